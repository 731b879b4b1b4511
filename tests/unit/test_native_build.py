"""When the fold's compiled build is used (projections/native.py): only when it was compiled from the
sources as they are, and not when SESSIONS_PURE_PYTHON says no."""

import pytest

from projections import native

pytestmark = pytest.mark.unit


@pytest.fixture
def build(tmp_path, monkeypatch):
    sources = tmp_path / "projections"
    sources.mkdir()
    (sources / "step.py").write_text("x = 1\n")
    monkeypatch.setattr(native, "SOURCE_DIRS", (sources,))
    monkeypatch.setattr(native, "BUILD_DIR", tmp_path / "_compiled")
    monkeypatch.delenv(native.OFF_SWITCH, raising=False)
    return sources


def stamp(digest: str) -> None:
    native.BUILD_DIR.mkdir(exist_ok=True)
    (native.BUILD_DIR / native.STAMP).write_text(digest + "\n")


def test_no_build_leaves_the_sources(build):
    assert native.search_path(["src"]) == ["src"]


def test_a_build_of_these_sources_comes_first(build):
    stamp(native.sources_digest())
    assert native.search_path(["src"]) == [str(native.BUILD_DIR), "src"]


def test_a_build_of_other_sources_is_left_out_saying_why(build):
    stamp(native.sources_digest())
    (build / "step.py").write_text("x = 2\n")  # edited since the build
    assert native.search_path(["src"]) == ["src"]
    assert native._why_not == ["the compiled build is of other sources: make compile"]


def test_the_off_switch_leaves_the_sources(build, monkeypatch):
    stamp(native.sources_digest())
    monkeypatch.setenv(native.OFF_SWITCH, "1")
    assert native.search_path(["src"]) == ["src"]
