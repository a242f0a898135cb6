"""The source strings: written in one place, read back by the lineage."""

from aiida_mlip_autopipe.data.sources import FileSource, file_source, node_source, parse_file_source, parse_node_source

SHA = '0123456789abcdef' * 4


def test_file_sources_round_trip():
    assert file_source('ase_db', SHA, 17, 'a1b2') == 'ase_db:0123456789abcdef:row=17:uid=a1b2'
    assert file_source('extxyz', SHA, 3) == 'extxyz:0123456789abcdef:frame=3'
    assert parse_file_source(file_source('ase_db', SHA, 17, 'a1b2')) == FileSource('ase_db', SHA[:16], 17)
    assert parse_file_source(file_source('extxyz', SHA, 3)) == FileSource('extxyz', SHA[:16], 3)


def test_node_sources_are_not_files():
    assert node_source('u-1') == 'aiida:u-1' and node_source('u-1', 4) == 'aiida:u-1:frame=4'
    assert parse_file_source(node_source('u-1', 4)) is None and parse_file_source('') is None


def test_node_sources_round_trip():
    uuid = '0f8fad5b-d9cb-469f-a165-70867728950e'
    assert parse_node_source(node_source(uuid)) == uuid == parse_node_source(node_source(uuid, 4))
    assert parse_node_source(file_source('extxyz', SHA, 3)) is None and parse_node_source('') is None
