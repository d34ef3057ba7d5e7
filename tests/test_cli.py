"""The command line as a user meets it: help texts, errors, config files, light start-up."""
import subprocess
import sys

import pytest

from sc_eval.cli import COMMANDS, main


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_subcommand_documents_its_flags(command, capsys):
    with pytest.raises(SystemExit) as e:
        main([command, "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: sc-eval " + command)
    # every option carries a help text
    import argparse

    from sc_eval.cli import build_parser

    parser = build_parser(command)
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
    undocumented = [a.option_strings or a.dest for a in sub._actions
                    if a.help in (None, "") and not isinstance(a, argparse._HelpAction)]
    assert not undocumented, f"flags without help in `sc-eval {command}`: {undocumented}"


def test_python_dash_m_and_top_level_help():
    out = subprocess.run([sys.executable, "-m", "sc_eval", "--help"], capture_output=True, text=True, check=True).stdout
    for name in COMMANDS:
        assert name in out


HEAVY = ("torch", "transformers", "peft", "timm", "open_clip", "webdataset", "datasets", "pycocoevalcap")


def _heavy_modules_imported(argv: list[str]) -> list[str]:
    """The heavy libraries a fresh process has imported after `sc-eval ARGV` (which must succeed)."""
    code = ("import sys, contextlib, io; from sc_eval.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    try:\n"
            f"        code = main({argv!r})\n"
            "    except SystemExit as e:\n"
            "        code = e.code\n"
            f"print('EXIT', code, 'HEAVY', sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    exit_code, heavy = out.split("EXIT ")[1].split(" HEAVY ")
    assert exit_code.strip() in ("0", "None"), out
    return heavy.strip()


@pytest.mark.parametrize("argv", [["ls", "tasks"], ["ls", "encoders"], ["ls", "adapters"], ["ls", "models"],
                                  ["--help"], *[[command, "--help"] for command in sorted(COMMANDS)]],
                         ids=" ".join)
def test_listing_and_help_import_nothing_heavy(argv):
    assert _heavy_modules_imported(argv) == "[]"


def test_scoring_official_files_imports_nothing_heavy(tiny_world, tmp_path):
    """`sc-eval score` loads no model: scoring a predictions file needs neither torch nor datasets."""
    import json

    questions = tiny_world / "vqav2" / "v2_OpenEnded_mscoco_val2014_questions.json"
    ids = [q["question_id"] for q in json.loads(questions.read_text())["questions"]]
    preds = tmp_path / "answers.json"
    preds.write_text(json.dumps([{"question_id": i, "answer": "yes"} for i in ids]))
    argv = ["score", "vqav2_val", "--predictions", str(preds), "--questions", str(questions),
            "--annotations", str(tiny_world / "vqav2" / "v2_mscoco_val2014_annotations.json")]
    assert _heavy_modules_imported(argv) == "[]"


def test_unknown_task_gets_a_did_you_mean(capsys, tmp_path):
    preds = tmp_path / "p.json"
    preds.write_text("[]")
    assert main(["score", "vqav2_vall", "--predictions", str(preds), "--annotations", str(preds)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sc-eval: error: unknown task 'vqav2_vall'") and "did you mean" in err
    assert "\n" == err[-1] and err.count("\n") == 1  # one line, no traceback


def test_config_file_sets_defaults_and_rejects_unknown_keys(tmp_path, capsys):
    from sc_eval.cli import _apply_config_defaults, build_parser

    cfg = tmp_path / "c.yaml"
    cfg.write_text("seed: 7\nbatch-size: 3\n")
    argv = ["probe", "--encoder", "random:sc-vit-micro", "--config", str(cfg), "--seed", "9"]
    parser = build_parser("probe")
    _apply_config_defaults(parser, argv)
    args = parser.parse_args(argv)
    assert (args.seed, args.batch_size) == (9, 3)  # the flag wins, the file fills the rest
    cfg.write_text("sede: 7\n")
    assert main(["probe", "--encoder", "random:sc-vit-micro", "--config", str(cfg)]) == 2
    assert "unknown key 'sede'" in capsys.readouterr().err
    cfg.write_text("steps: [3\n")  # a bracket never closed
    assert main(["probe", "--encoder", "random:sc-vit-micro", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert f"--config {cfg}: not valid YAML at line 2" in err and "Traceback" not in err


@pytest.mark.parametrize("form", ["--config=FILE", "--conf FILE", "--config FILE"])
def test_config_file_is_read_in_every_form_argparse_accepts(tmp_path, form):
    from sc_eval.cli import _apply_config_defaults, build_parser

    cfg = tmp_path / "c.yaml"
    cfg.write_text("seed: 7\nbatch-size: 3\nepochs: 12\n")
    argv = ["probe", "--encoder", "random:sc-vit-micro", *form.replace("FILE", str(cfg)).split(), "--seed", "9"]
    parser = build_parser("probe")
    _apply_config_defaults(parser, argv)
    args = parser.parse_args(argv)
    assert (args.seed, args.batch_size, args.epochs) == (9, 3, 12)


@pytest.mark.parametrize("text, fragment", [("epochs: 2.5\n", "'2.5'"), ("epochs: true\n", "expected one argument"),
                                            ("precision: fp64\n", "invalid choice"),
                                            ("overwrite: maybe\n", "overwrite")])
def test_config_values_meet_the_flags_own_checks(tmp_path, capsys, text, fragment):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text)
    run = tmp_path / "run"
    assert main(["probe", "--encoder", "random:sc-vit-micro", f"--config={cfg}", "--output-dir", str(run)]) == 2
    err = capsys.readouterr().err
    assert f"--config {cfg}: " in err and fragment in err and err.count("\n") == 1
    assert not run.exists()  # refused before anything ran


def test_ls_adapters_lists_every_adapter_with_a_command_that_runs_it(capsys):
    from sc_eval.adapters import ADAPTERS
    from sc_eval.adapters.probe.command import TASKS as PROBE_TASKS

    assert main(["ls", "adapters"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert set(rows) == set(ADAPTERS) and "probe" not in rows  # `probe` is a command, not an adapter
    for a in ADAPTERS.values():
        prog, command, *rest = a.command.split()
        assert prog == "sc-eval" and command in COMMANDS and a.command in rows[a.name]
        if rest:  # a probe task
            assert rest[0] == "--tasks" and rest[1] in PROBE_TASKS


def test_a_closed_stdout_pipe_ends_quietly():
    """`sc-eval ... | head`: the reader leaves early; no traceback, SIGPIPE's exit status."""
    import os

    p = subprocess.Popen([sys.executable, "-m", "sc_eval", "ls", "tasks"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    p.stdout.close()  # before the first write
    err = p.stderr.read().decode()
    assert p.wait(timeout=120) == 141 and "Traceback" not in err and "BrokenPipe" not in err
