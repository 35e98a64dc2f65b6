"""Checkpoints for PyTorch trainers: round trip, atomic writes and partial restore."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pytest

if TYPE_CHECKING:
    import torch
else:
    torch = pytest.importorskip("torch")

from worker_client import torch_checkpoint  # noqa: E402
from worker_client.torch_checkpoint import (  # noqa: E402
    load_checkpoint,
    partial_restore,
    save_checkpoint,
)


def mlp(hidden: int, seed: int, extra_layer: bool = False) -> torch.nn.Sequential:
    torch.manual_seed(seed)
    layers: list[torch.nn.Module] = [
        torch.nn.Linear(6, hidden),
        torch.nn.ReLU(),
        torch.nn.Linear(hidden, 8),
        torch.nn.ReLU(),
        torch.nn.Linear(8, 3),
    ]
    if extra_layer:
        layers += [torch.nn.ReLU(), torch.nn.Linear(3, 3)]
    return torch.nn.Sequential(*layers)


def take_steps(model: torch.nn.Module, optimizer: torch.optim.Optimizer, steps: int = 3) -> None:
    generator = torch.Generator().manual_seed(0)
    for _ in range(steps):
        optimizer.zero_grad()
        model(torch.randn(5, 6, generator=generator)).pow(2).mean().backward()
        optimizer.step()


def assert_same_state(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for name in sa:
        assert torch.equal(sa[name], sb[name]), name


def test_round_trip_restores_model_optimizer_step_and_extra(tmp_path: Path) -> None:
    model = mlp(16, seed=1)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    take_steps(model, optimizer)
    path = save_checkpoint(tmp_path / "ckpt-000000003", model, optimizer, step=3, extra={"note": "x"})

    copy = mlp(16, seed=2)
    copy_optimizer = torch.optim.Adam(copy.parameters(), lr=0.01)
    info = load_checkpoint(path, copy, copy_optimizer)

    assert info == {"step": 3, "extra": {"note": "x"}}
    assert_same_state(model, copy)
    take_steps(model, optimizer, steps=1)
    take_steps(copy, copy_optimizer, steps=1)
    assert_same_state(model, copy)  # Adam moments came back too


def test_load_keeps_the_new_learning_rate(tmp_path: Path) -> None:
    model = mlp(16, seed=1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    take_steps(model, optimizer)
    path = save_checkpoint(tmp_path / "ckpt-000000003", model, optimizer, step=3)

    child_optimizer = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.5)
    load_checkpoint(path, model, child_optimizer)

    assert child_optimizer.param_groups[0]["lr"] == 0.5
    assert child_optimizer.param_groups[0]["momentum"] == 0.5
    assert len(child_optimizer.state) == len(list(model.parameters()))


def test_strict_load_of_another_architecture_raises(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "ckpt-000000001", mlp(16, seed=1), step=1)
    with pytest.raises(RuntimeError):
        load_checkpoint(path, mlp(32, seed=1))


def test_load_rejects_a_foreign_file(tmp_path: Path) -> None:
    path = tmp_path / "ckpt-000000001"
    torch.save({"weights": torch.zeros(2)}, path)
    with pytest.raises(ValueError, match="not a checkpoint"):
        load_checkpoint(path, mlp(16, seed=1))


def test_target_appears_only_once_complete(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "ckpt-000000001"
    seen: list[tuple[bool, list[str]]] = []
    real_save = cast(Any, torch_checkpoint).torch.save

    def observed_save(obj: Any, handle: Any) -> None:
        real_save(obj, handle)
        seen.append((target.exists(), sorted(p.name for p in tmp_path.iterdir())))

    monkeypatch.setattr(cast(Any, torch_checkpoint).torch, "save", observed_save)
    save_checkpoint(target, mlp(16, seed=1), step=1)

    [(existed_while_writing, names_while_writing)] = seen
    assert not existed_while_writing
    assert len(names_while_writing) == 1 and names_while_writing[0].startswith(".ckpt-000000001.")
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt-000000001"]


def test_failed_write_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "ckpt-000000001"
    save_checkpoint(target, mlp(16, seed=1), step=1)
    before = target.read_bytes()

    def broken_save(obj: Any, handle: Any) -> None:
        handle.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(cast(Any, torch_checkpoint).torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(target, mlp(16, seed=2), step=2)

    assert [p.name for p in tmp_path.iterdir()] == ["ckpt-000000001"]
    assert target.read_bytes() == before


def test_concurrent_reader_never_sees_a_partial_file(tmp_path: Path) -> None:
    target = tmp_path / "ckpt-000000001"
    model = mlp(128, seed=1)
    done = threading.Event()
    errors: list[BaseException] = []
    reads = 0

    def reader() -> None:
        nonlocal reads
        while not done.is_set():
            if target.exists():
                try:
                    load_checkpoint(target, mlp(128, seed=2))
                    reads += 1
                except BaseException as error:  # noqa: BLE001 - recorded for the assertion
                    errors.append(error)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for step in range(30):
            save_checkpoint(target, model, step=step)
    finally:
        done.set()
        thread.join()
    assert errors == []
    assert reads > 0


def test_partial_restore_of_a_narrower_model_loads_exactly_the_matching_tensors(tmp_path: Path) -> None:
    wide = mlp(32, seed=1)
    path = save_checkpoint(tmp_path / "ckpt-000000007", wide, step=7, extra={"a": 1})
    narrow = mlp(16, seed=2)
    before = {k: v.clone() for k, v in narrow.state_dict().items()}

    report = partial_restore(path, narrow)

    assert report.loaded == ("2.bias", "4.weight", "4.bias")
    assert report.shape_mismatch == ("0.weight", "0.bias", "2.weight")
    assert report.missing == () and report.unexpected == ()
    assert not report.complete
    assert (report.step, dict(report.extra)) == (7, {"a": 1})
    after, saved = narrow.state_dict(), wide.state_dict()
    for name in report.loaded:
        assert torch.equal(after[name], saved[name]), name
    for name in report.shape_mismatch:
        assert torch.equal(after[name], before[name]), name


def test_partial_restore_reports_missing_and_unexpected_layers(tmp_path: Path) -> None:
    deep = mlp(16, seed=1, extra_layer=True)
    path = save_checkpoint(tmp_path / "ckpt-000000001", deep, step=1)

    shallow = mlp(16, seed=2)
    report = partial_restore(path, shallow)
    assert report.unexpected == ("6.weight", "6.bias") and report.missing == ()
    assert len(report.loaded) == 6

    deeper = mlp(16, seed=3, extra_layer=True)
    shallow_path = save_checkpoint(tmp_path / "ckpt-000000002", shallow, step=2)
    report = partial_restore(shallow_path, deeper)
    assert report.missing == ("6.weight", "6.bias") and report.unexpected == ()


def test_partial_restore_restores_the_optimizer_only_when_everything_matches(tmp_path: Path) -> None:
    model = mlp(16, seed=1)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    take_steps(model, optimizer)
    path = save_checkpoint(tmp_path / "ckpt-000000003", model, optimizer, step=3)

    same = mlp(16, seed=2)
    same_optimizer = torch.optim.Adam(same.parameters(), lr=0.02)
    report = partial_restore(path, same, same_optimizer)
    assert report.complete and report.optimizer_restored and report.optimizer_skipped == ""
    assert same_optimizer.param_groups[0]["lr"] == 0.02
    assert len(same_optimizer.state) == 6

    narrow = mlp(8, seed=2)
    narrow_optimizer = torch.optim.Adam(narrow.parameters(), lr=0.01)
    report = partial_restore(path, narrow, narrow_optimizer)
    assert not report.optimizer_restored and "do not all match" in report.optimizer_skipped
    assert len(narrow_optimizer.state) == 0

    other = mlp(16, seed=2)
    sgd = torch.optim.SGD(other.parameters(), lr=0.01)
    report = partial_restore(path, other, sgd)
    assert report.complete and not report.optimizer_restored
    assert "Adam" in report.optimizer_skipped


def test_importing_worker_client_does_not_import_torch() -> None:
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    code = "import sys, worker_client; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
