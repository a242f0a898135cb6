"""The loop's spec is static: the `pw` namespace is always PwBaseWorkChain's exposed inputs (aiida-quantumespresso
is a required dependency), never a dynamic stand-in chosen by whether an import succeeds."""

import subprocess
import sys

from aiida_mlip_autopipe.workflows.active_learning import PacemakerActiveLearningWorkChain


def test_pw_namespace_is_pwbaseworkchain_inputs():
    pw = PacemakerActiveLearningWorkChain.spec().inputs['pw']
    assert not pw.required and 'max_iterations' in pw  # PwBaseWorkChain's own ports, not a bare namespace
    assert {'code', 'parameters'} <= set(pw['pw']) and 'kpoints_distance' in pw
    assert 'structure' not in pw['pw'] and 'pseudos' not in pw['pw']  # from the loop's structures / pseudo_family


def test_without_aiida_quantumespresso_the_module_does_not_import():
    """No fallback spec: a missing dependency is an ImportError at import, not a loop whose `pw` takes anything."""
    probe = (
        "import sys; sys.modules['aiida_quantumespresso'] = None\n"
        'try:\n    import aiida_mlip_autopipe.workflows.active_learning\n'
        'except ImportError as error:\n    print(error.name)\n'
    )
    result = subprocess.run([sys.executable, '-c', probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip().startswith('aiida_quantumespresso'), result.stdout
