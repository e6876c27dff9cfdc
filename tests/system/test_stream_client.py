"""The camera client's own behaviour, without a stack: dead targets, the aggregator it pairs with."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from ferlite.app.client import Smoother
from ferlite.app.stream import aggregator_beside, private_file
from tests.support.procs import ROOT


def test_streaming_to_a_dead_target_says_so_once(tmp_path) -> None:
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"")  # never opened: the target is checked first
    result = subprocess.run([sys.executable, "-m", "ferlite", "stream", "--source", str(clip), "--classroom", "room",
                             "--target", "127.0.0.1:9"], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "nothing answers at 127.0.0.1:9" in lines[0] and "ferlite up" in lines[0]


def test_summary_goes_to_the_aggregator_of_the_same_stack() -> None:
    assert aggregator_beside("127.0.0.1:50051") == "127.0.0.1:50053"
    assert aggregator_beside("10.0.0.7:50151") == "10.0.0.7:50153"


def test_summary_command_without_a_stack() -> None:
    result = subprocess.run([sys.executable, "-m", "ferlite", "summary", "--classroom", "room", "--aggregator",
                             "127.0.0.1:9"], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 1 and "nothing answers" in result.stderr


def test_tracks_follow_the_services_uncertain_flag() -> None:
    smoother = Smoother(alpha=0.5)
    happy = [0.05, 0.05, 0.05, 0.6, 0.1, 0.1, 0.05]
    assert smoother.update("t1", happy, uncertain=False)[0] == "happy"
    assert smoother.update("t2", happy, uncertain=True)[0] == "uncertain"
    assert Smoother(uncertain_below=0.7).update("t3", happy)[0] == "uncertain"


def test_the_annotated_video_is_readable_by_its_owner_only(tmp_path) -> None:
    """It shows the classroom's faces; an existing file would otherwise keep its (umask) mode."""
    video = tmp_path / "annotated.mp4"
    video.write_bytes(b"old")
    video.chmod(0o644)
    private_file(video)
    assert video.stat().st_mode & 0o777 == 0o600 and video.read_bytes() == b""



def test_json_is_a_flag_that_prints_in_stream_and_summary(capsys) -> None:
    """`--json` prints JSON on stdout in every command (stream's once took a file name, summary's
    printed); the stream writes a file with `--json-file PATH`."""
    from ferlite.app import stream

    for main in (stream.main, stream.summary_main):
        with pytest.raises(SystemExit):
            main(["--help"])
        assert re.search(r"--json\s+print", capsys.readouterr().out)  # a flag, no argument, prints
    with pytest.raises(SystemExit):
        stream.main(["--help"])
    assert "--json-file PATH" in capsys.readouterr().out
