"""The broker's shared class archive (streams.devkit.kafka.class_archive): made once, by one maker,
used when made, and a failure to make it leaves brokers starting without it (and says why)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from streams.devkit.kafka import class_archive

pytestmark = pytest.mark.unit


@pytest.fixture
def libs(tmp_path: Path) -> Path:
    (tmp_path / "lib").mkdir()
    return tmp_path / "lib"


def test_it_is_made_once_and_then_mapped_by_every_jvm(libs: Path):
    made: list[Path] = []

    def make(path: Path) -> None:
        made.append(path)
        path.write_bytes(b"classes")

    first = class_archive.options(sys.executable, libs, make, quiet=True)
    second = class_archive.options(sys.executable, libs, make, quiet=True)
    archive = class_archive.archive_path(sys.executable, libs)
    assert first == second == [f"-XX:SharedArchiveFile={archive}"]
    assert len(made) == 1 and made[0] != archive  # written aside, then moved in whole
    assert archive.read_bytes() == b"classes" and archive.parent == libs.parent
    assert not list(libs.parent.glob("*.partial"))


def test_a_maker_that_fails_leaves_brokers_without_it_and_is_not_tried_again(libs: Path):
    calls = []

    def make(path: Path) -> None:
        calls.append(path)
        raise RuntimeError("the broker did not answer")

    assert class_archive.options(sys.executable, libs, make, quiet=True) == []
    assert class_archive.options(sys.executable, libs, make, quiet=True) == []
    assert len(calls) == 1
    failed = class_archive.archive_path(sys.executable, libs).with_suffix(".failed")
    assert "the broker did not answer" in failed.read_text()


def test_a_jvm_that_writes_nothing_counts_as_a_failure(libs: Path):
    assert class_archive.options(sys.executable, libs, lambda path: None, quiet=True) == []
    failed = class_archive.archive_path(sys.executable, libs).with_suffix(".failed")
    assert "wrote no archive" in failed.read_text()


def test_it_can_be_switched_off(libs: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(class_archive.SWITCH, "off")

    def make(path: Path) -> None:
        raise AssertionError("made though switched off")

    assert class_archive.options(sys.executable, libs, make, quiet=True) == []


def test_another_java_gets_an_archive_of_its_own(libs: Path, tmp_path: Path):
    other = tmp_path / "java"
    other.write_text("#!/bin/sh\n")
    assert class_archive.archive_path(sys.executable, libs) != class_archive.archive_path(str(other), libs)
    assert class_archive.dump_options(libs / "x.jsa") == [f"-XX:ArchiveClassesAtExit={libs / 'x.jsa'}"]
