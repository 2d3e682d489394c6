"""`civicflow notify` and `replay --notify`: what is notified, and one line for each mistake."""

from __future__ import annotations

from pathlib import Path

import pytest

from civicflow import cli, pipeline

FIXTURE = str(Path(__file__).parent.parent / "fixtures" / "grid_small.jsonl")


class Replayed(Exception):
    pass


@pytest.fixture
def replay_calls(monkeypatch):
    calls: list[dict] = []

    def fake_replay(settings, files, as_of, progress, **options):
        calls.append(options)
        raise Replayed

    monkeypatch.setattr(pipeline, "replay", fake_replay)
    monkeypatch.setenv("CIVICFLOW_ALERTMANAGER_URL", "http://127.0.0.1:9093")
    return calls


def test_replay_notifies_only_when_asked(replay_calls):
    with pytest.raises(Replayed):
        cli.run(cli.build_parser().parse_args(["replay", "--format", "jn-grid", FIXTURE]))
    with pytest.raises(Replayed):
        cli.run(cli.build_parser().parse_args(["replay", "--format", "jn-grid", FIXTURE, "--notify",
                                               "--alertmanager", "http://am.internal:9093"]))
    # Alertmanager configured in the environment is not enough: a replay notifies with --notify
    assert [call["alertmanager"] for call in replay_calls] == [None, "http://am.internal:9093"]


@pytest.mark.parametrize(("argv", "env", "message"), [
    (["notify", "--alertmanager", "http://127.0.0.1:9093"], {}, "notify needs a broker"),
    (["notify", "--bootstrap", "127.0.0.1:9"], {}, "CIVICFLOW_ALERTMANAGER_URL"),
    (["notify", "--bootstrap", "127.0.0.1:9", "--alertmanager", "127.0.0.1:9093"], {}, "http://"),
    (["notify", "--bootstrap", "127.0.0.1:9", "--alertmanager", "http://127.0.0.1:9093"],
     {"CIVICFLOW_NOTIFY_RESEND_SECONDS": "600"}, "at least twice"),
    (["replay", "--format", "jn-grid", FIXTURE, "--notify"], {}, "replay --notify needs Alertmanager"),
])
def test_mistakes_are_one_line(monkeypatch, capsys, argv, env, message):
    monkeypatch.setattr(cli.signal, "signal", lambda *_: None)  # keep pytest's own handlers
    monkeypatch.delenv("CIVICFLOW_ALERTMANAGER_URL", raising=False)
    monkeypatch.delenv("CIVICFLOW_BOOTSTRAP", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err.replace("\n", " ") and "Traceback" not in err
