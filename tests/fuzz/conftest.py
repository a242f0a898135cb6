"""Fixtures of the differential fuzz test: pacemaker's side as one long-lived worker process."""

from __future__ import annotations

import json
import pathlib
import select
import subprocess
import time

import pytest

WORKER = pathlib.Path(__file__).resolve().parent / 'pacemaker_worker.py'


class PacemakerWorker:
    """One ``pacemaker_worker.py`` process in pacemaker's environment, asked over JSON lines."""

    def __init__(self, python: pathlib.Path, workdir: pathlib.Path):
        self.python, self.workdir = python, workdir
        self.log = open(workdir / 'worker.log', 'w')  # closed in close()
        self.process: subprocess.Popen | None = None
        self.requests = 0
        self.start()

    def start(self) -> None:
        self.process = subprocess.Popen(
            [str(self.python), str(WORKER), str(self.workdir / 'runs')],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            bufsize=1,
        )
        ready = self._answer(timeout=300)
        assert ready.get('ready'), ready

    def _answer(self, timeout: float) -> dict:
        assert self.process is not None and self.process.stdout is not None
        readable, _, _ = select.select([self.process.stdout], [], [], timeout)
        if not readable:
            raise TimeoutError(f'the pacemaker worker gave no answer in {timeout} s (log: {self.log.name})')
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f'the pacemaker worker died (exit {self.process.poll()}; log: {self.log.name})')
        return json.loads(line)

    def ask(self, request: dict, timeout: float = 300) -> dict:
        """Send one request and return the answer; a worker that hangs or dies is restarted and the error raised."""
        assert self.process is not None and self.process.stdin is not None
        self.requests += 1
        try:
            self.process.stdin.write(json.dumps(request) + '\n')
            self.process.stdin.flush()
            answer = self._answer(timeout)
        except (TimeoutError, RuntimeError, BrokenPipeError):
            self.close(keep_log=True)
            self.start()
            raise
        if 'worker_error' in answer:
            raise RuntimeError(f'pacemaker worker: {answer["worker_error"]}')
        return answer

    def close(self, keep_log: bool = False) -> None:
        if self.process is not None:
            if self.process.poll() is None:
                self.process.kill()
            self.process.wait()
            for stream in (self.process.stdin, self.process.stdout):
                if stream is not None:
                    stream.close()
            self.process = None
        if not keep_log:
            self.log.close()


@pytest.fixture(scope='session')
def pacemaker_worker(pacemaker_executable, tmp_path_factory):
    """The worker, started once with the interpreter of the pacemaker installation (TensorFlow imported once)."""
    python = pathlib.Path(pacemaker_executable).parent / 'python'
    if not python.exists():
        pytest.fail(f'no Python beside {pacemaker_executable}: the fuzz test needs pacemaker installed')
    started = time.monotonic()
    worker = PacemakerWorker(python, tmp_path_factory.mktemp('pacemaker_worker'))
    worker.startup_seconds = time.monotonic() - started
    yield worker
    worker.close()
