"""The command line: `pyvae demo`, `pyvae info`, help, and exit codes (0 ok, 1 runtime error, 2 usage)."""

import os
import subprocess
import sys
import tempfile

import pytest

import pyvae
from pyvae.__main__ import REPORT_FILES, _check_report_dir, build_parser, main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(pyvae.__file__)))


def run_cli(*args):
    """`python -m pyvae ARGS` in a fresh interpreter, on the same pyvae as the tests."""
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    # Away from the repository root, where `python -m` would find the source tree
    # (without the compiled core) ahead of the pyvae the tests import.
    return subprocess.run([sys.executable, "-m", "pyvae", *args], capture_output=True, text=True, env=env,
                          timeout=300, cwd=tempfile.gettempdir())


def test_info_prints_the_build_configuration(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert f"version: {pyvae.__version__}" in out
    assert "openmp:" in out and "blas:" in out


@pytest.mark.parametrize("argv", [["--help"], ["demo", "--help"], ["info", "--help"]])
def test_help_exits_0(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 0
    assert "usage: pyvae" in capsys.readouterr().out


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"pyvae {pyvae.__version__}"


@pytest.mark.parametrize("argv", [["demo", "--epochs", "0"], ["demo", "--epochs", "x"], ["nonsense"],
                                  ["demo", "--no-such-option"]])
def test_usage_errors_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert "usage: pyvae" in capsys.readouterr().err


def test_demo_quiet_prints_the_held_out_elbo_and_nothing_else(capsys):
    assert main(["demo", "--quiet", "--epochs", "1"]) == 0
    captured = capsys.readouterr()
    assert "up to 1 epochs" in captured.out and "held-out ELBO per digit" in captured.out
    assert captured.err == ""


def test_no_command_means_demo_and_options_go_on_either_side():
    parser = build_parser()
    args = parser.parse_args(["--quiet", "--epochs", "3", "--n-components", "2"])
    assert (args.command, args.quiet, args.epochs, args.n_components, args.out) == (None, True, 3, 2, None)
    args = parser.parse_args(["--epochs", "3", "demo", "--seed", "7"])  # top-level value kept
    assert (args.command, args.epochs, args.seed, args.force) == ("demo", 3, 7, False)
    args = parser.parse_args(["demo", "--epochs", "4", "--out", "d", "--force"])
    assert (args.epochs, args.out, args.force) == (4, "d", True)


def test_demo_shows_progress_and_writes_the_report_into_an_empty_directory(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    pytest.importorskip("tqdm")
    assert main(["demo", "--epochs", "1", "--out", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert "VAE fit" in captured.err and "ELBO" in captured.err and "KL" in captured.err
    assert "report: 5 pictures" in captured.out
    assert sorted(os.listdir(tmp_path)) == sorted(REPORT_FILES)
    for name in REPORT_FILES:
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_demo_does_not_overwrite_a_non_empty_directory_without_force(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    (tmp_path / "samples.png").write_bytes(b"mine")
    assert main(["demo", "--quiet", "--out", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert "--force" in captured.err and len(captured.err.strip().splitlines()) == 1
    assert "Training" not in captured.out  # refused before training
    assert (tmp_path / "samples.png").read_bytes() == b"mine"
    _check_report_dir(str(tmp_path), force=True)  # --force lets it through
    _check_report_dir(str(tmp_path / "new" / "dir"), force=False)  # a missing directory is made


def test_runtime_error_is_one_line_on_stderr_and_exit_1(tmp_path, monkeypatch, capsys):
    def broken_fit(self, X, y=None):
        raise FloatingPointError("Training diverged:\n  the ELBO became NaN")

    monkeypatch.setattr(pyvae.VAE, "fit", broken_fit)
    assert main(["demo", "--quiet", "--epochs", "1"]) == 1
    err = capsys.readouterr().err
    assert err == "pyvae: error: FloatingPointError: Training diverged: the ELBO became NaN\n"


def test_module_entry_point_exit_1_without_traceback(tmp_path):
    not_a_dir = tmp_path / "file.txt"
    not_a_dir.write_text("x")
    result = run_cli("demo", "--quiet", "--out", str(not_a_dir))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("pyvae: error:") and len(result.stderr.strip().splitlines()) == 1
    assert "not a directory" in result.stderr


def test_demo_says_why_training_stopped(capsys):
    assert main(["demo", "--quiet"]) == 0  # default epochs: trains until the validation ELBO stops improving
    assert "training converged after" in capsys.readouterr().out
    assert main(["demo", "--quiet", "--epochs", "2"]) == 0
    assert "stopped at the limit of 2 epochs before converging" in capsys.readouterr().out
