"""CommandCheck with real processes: exit codes, output, and the process group killed every time.

Commands are run through ``sh -c`` *by the test* (argv ``["sh", "-c", script]``), so that
a test can background a grandchild and write pids to files. A pid is "gone" when it is
absent from /proc or a zombie: a killed grandchild is re-parented to PID 1, which need not
reap it (in a container it often does not); the command itself, our child, must be reaped.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rpc_server_support import eventually

from engined import HealthCheckManager, HealthStatus
from engined.checks import CommandCheck
from engined.checks._process import TERM_GRACE

pytestmark = pytest.mark.integration


def _state(pid: int) -> str | None:
    """The process state letter of ``pid`` (R, S, Z...), or None if it does not exist."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return stat.rpartition(")")[2].split()[0]


def _group_running(pgid: int) -> list[int]:
    """Pids of process group ``pgid`` that are alive (not zombies)."""
    alive = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            alive.append(int(entry.name))
    return alive


async def _until_group_gone(pgid: int, within: float = 5.0) -> None:
    """Wait until no process of group ``pgid`` runs; fail listing the ones that still do."""
    try:
        await eventually(lambda: not _group_running(pgid), within=within)
    except AssertionError:
        survivors = {pid: _cmdline(pid) for pid in _group_running(pgid)}
        raise AssertionError(f"still running in process group {pgid}: {survivors}") from None


def _cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return "?"
    return raw.replace(b"\0", b" ").decode(errors="replace").strip() + f" [{_state(pid)}]"


def _only_this_task_runs() -> bool:
    return asyncio.all_tasks() <= {asyncio.current_task()}


def _gone(pid: int) -> bool:
    return _state(pid) in (None, "Z")


def _read_pid(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return None
    return int(text) if text.isdigit() else None


async def _pid_from(path: Path) -> int:
    await eventually(lambda: _read_pid(path) is not None)
    pid = _read_pid(path)
    assert pid is not None
    return pid


@pytest.fixture
def killer() -> Iterator[list[int]]:
    """Pids a test started; whatever still runs of them or their groups is killed at the end."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        for member in _group_running(pid):  # a command leads its group: pgid == its pid
            os.kill(member, signal.SIGKILL)
        if not _gone(pid):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize(
    ("code", "status"),
    [(0, HealthStatus.HEALTHY), (1, HealthStatus.DEGRADED), (2, HealthStatus.UNHEALTHY)],
)
async def test_exit_status_decides_the_verdict(code: int, status: HealthStatus) -> None:
    """Exit 0 is HEALTHY, 1 DEGRADED, anything else UNHEALTHY, with the output quoted."""
    check = CommandCheck(["sh", "-c", f"echo replica lag 3s; exit {code}"])
    result = await check()
    assert result.status is status
    assert result.message == f"exit {code}: replica lag 3s"
    assert result.details == {
        "exit_code": code,
        "output": "replica lag 3s\n",
        "output_truncated": False,
    }


async def test_a_command_killed_by_a_signal_is_unhealthy_naming_it() -> None:
    """A command that dies of a signal is UNHEALTHY and the message names the signal."""
    result = await CommandCheck(["sh", "-c", "kill -SEGV $$"])()
    assert result.status is HealthStatus.UNHEALTHY
    assert result.message == "killed by SIGSEGV"
    assert result.details["exit_code"] == -11


async def test_output_is_capped_and_redacted() -> None:
    """Only max_output bytes of stdout+stderr are kept, and a password in them is masked."""
    script = "echo password=hunter2 >&2; head -c 20000 /dev/zero | tr '\\0' x; exit 2"
    result = await CommandCheck(["sh", "-c", script], max_output=100)()
    output = result.details["output"]
    assert output.startswith("password=***\n")
    assert len(output.encode()) <= 100
    assert result.details["output_truncated"] is True
    assert "hunter2" not in result.message
    assert "hunter2" not in output
    assert result.message.startswith("exit 2: password=*** xxx")


async def test_invalid_utf8_output_is_replaced_not_fatal() -> None:
    """Bytes that are not UTF-8 are decoded with replacement characters."""
    result = await CommandCheck([sys.executable, "-c", "import os; os.write(1, b'ok \\xff')"])()
    assert result.status is HealthStatus.HEALTHY
    assert result.details["output"] == "ok \ufffd"


async def test_a_missing_program_is_unhealthy_command_not_found() -> None:
    """A program that does not exist is UNHEALTHY "command not found: <argv0>"."""
    result = await CommandCheck(["/nonexistent/pg_isready", "-q"])()
    assert result.status is HealthStatus.UNHEALTHY
    assert result.message == "command not found: /nonexistent/pg_isready"


async def test_a_missing_working_directory_is_named(tmp_path: Path) -> None:
    """A cwd that does not exist is told apart from a missing program."""
    missing = str(tmp_path / "gone")
    result = await CommandCheck(["true"], cwd=missing)()
    assert result.message == f"working directory not found: {missing}"


async def test_a_program_that_is_not_executable_is_named(tmp_path: Path) -> None:
    """A file without the execute bit is UNHEALTHY "command not executable"."""
    script = tmp_path / "probe.sh"
    script.write_text("#!/bin/sh\nexit 0\n")
    result = await CommandCheck([str(script)])()
    assert result.message == f"command not executable: {script}"


async def test_env_is_added_to_the_inherited_environment(tmp_path: Path) -> None:
    """Variables in env reach the command, and PATH is still inherited."""
    check = CommandCheck(["sh", "-c", 'echo "$PROBE_MODE"; exit 0'], env={"PROBE_MODE": "deep"})
    result = await check()
    assert result.details["output"] == "deep\n"
    result = await CommandCheck(["sh", "-c", "cat /dev/null"], cwd=str(tmp_path))()
    assert result.status is HealthStatus.HEALTHY


async def test_a_grandchild_left_behind_is_killed_when_the_command_exits(
    tmp_path: Path, killer: list[int]
) -> None:
    """A background process holding the output pipe neither delays the result nor survives."""
    script = f"sleep 30 & echo $! > {tmp_path}/gc.pid; echo started"
    async with asyncio.timeout(5):  # without the group kill, the pipe stays open 30 s
        result = await CommandCheck(["sh", "-c", script])()
    grandchild = int((tmp_path / "gc.pid").read_text())
    killer.append(grandchild)
    assert result.status is HealthStatus.HEALTHY
    assert result.details["output"] == "started\n"
    await eventually(lambda: _gone(grandchild))


async def test_the_manager_timeout_kills_the_whole_process_group(
    tmp_path: Path, killer: list[int]
) -> None:
    """A command past its timeout is UNHEALTHY "timeout"; it and its grandchild are gone."""
    script = f"echo $$ > {tmp_path}/child.pid; sleep 60 & echo $! > {tmp_path}/gc.pid; wait"
    manager = HealthCheckManager()
    manager.register("slow", CommandCheck(["sh", "-c", script]), timeout=0.5)
    health = await manager.run_check("slow")
    child = await _pid_from(tmp_path / "child.pid")
    grandchild = await _pid_from(tmp_path / "gc.pid")
    killer.extend([child, grandchild])
    assert health.status is HealthStatus.UNHEALTHY
    assert health.last_result is not None
    assert health.last_result.error == "timeout"
    await _until_group_gone(child, within=TERM_GRACE + 4)
    await eventually(lambda: _state(child) is None)  # reaped: no zombie of ours
    assert _gone(grandchild)
    await eventually(_only_this_task_runs)  # the cancelled check has finished cleaning up


async def test_a_command_ignoring_sigterm_is_killed_after_the_grace(
    tmp_path: Path, killer: list[int]
) -> None:
    """SIGTERM ignored: SIGKILL follows within the grace, for the command and its children."""
    script = (
        f"trap '' TERM; echo $$ > {tmp_path}/child.pid; "
        f"sh -c 'trap \"\" TERM; sleep 60' & echo $! > {tmp_path}/gc.pid; wait"
    )
    task = asyncio.create_task(CommandCheck(["sh", "-c", script])())
    child = await _pid_from(tmp_path / "child.pid")
    grandchild = await _pid_from(tmp_path / "gc.pid")
    killer.extend([child, grandchild])
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task  # returns once SIGKILL was sent, after the grace
    await _until_group_gone(child)
    await eventually(lambda: _state(child) is None)
    assert _gone(grandchild)


async def test_a_call_cancelled_while_the_command_starts_still_kills_its_group(
    tmp_path: Path, killer: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cancelled before the output pipe is connected, the command's whole group still dies.

    The pipe connection is held back by a gate, so the command runs (and forks) while
    asyncio is still starting it: the window where asyncio's own clean-up would kill the
    command's pid only and leave its children running.
    """
    loop = asyncio.get_running_loop()
    gate = asyncio.Event()
    connect, spawn = loop.connect_read_pipe, loop.subprocess_exec
    transports: list[asyncio.SubprocessTransport] = []

    async def held_back(*args: Any, **kwargs: Any) -> Any:
        await gate.wait()
        return await connect(*args, **kwargs)

    async def recorded(*args: Any, **kwargs: Any) -> Any:
        transport, protocol = await spawn(*args, **kwargs)
        transports.append(transport)
        return transport, protocol

    monkeypatch.setattr(loop, "connect_read_pipe", held_back)
    monkeypatch.setattr(loop, "subprocess_exec", recorded)
    script = f"echo $$ > {tmp_path}/child.pid; sleep 60 & echo $! > {tmp_path}/gc.pid; wait"
    task = asyncio.create_task(CommandCheck(["sh", "-c", script])())
    child = await _pid_from(tmp_path / "child.pid")
    grandchild = await _pid_from(tmp_path / "gc.pid")
    killer.extend([child, grandchild])
    task.cancel()  # the start is still held at the gate
    gate.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert _state(child) is None  # killed and reaped before the call ended
    assert transports[0].get_returncode() == -signal.SIGKILL
    await _until_group_gone(child)
    assert _gone(grandchild)
    await eventually(transports[0].is_closing)


async def test_output_floods_do_not_block_the_command() -> None:
    """Output far past the cap is drained, so the command runs to its exit."""
    script = "head -c 5000000 /dev/zero; exit 1"
    async with asyncio.timeout(10):
        result = await CommandCheck(["sh", "-c", script], max_output=10)()
    assert result.status is HealthStatus.DEGRADED
    assert result.details["output"] == "\0" * 10
