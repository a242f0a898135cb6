"""An ``exit-codes`` directive: the table of a process's exit codes, generated from its spec."""

from __future__ import annotations

from generated_table import GeneratedTable


class ExitCodes(GeneratedTable):
    """``.. exit-codes:: package.module.ProcessClass``"""

    def lines(self, process) -> list[str]:
        codes = sorted(process.exit_codes.items(), key=lambda item: item[1].status)
        lines = ['| status | label | message |', '|---|---|---|']
        for label, code in codes:
            message = ' '.join((code.message or '').split()).replace('|', '\\|')
            lines.append(f'| {code.status} | `{label}` | {message} |')
        return lines


def setup(app):
    app.add_directive('exit-codes', ExitCodes)
    return {'parallel_read_safe': True}
