"""Finding videos: files, folders and globs; order, duplicates, and the error when nothing is found."""

from __future__ import annotations

import pytest

from tasks.errors import SourceError


@pytest.fixture
def archive(tmp_path):
    for rel in ("b.mp4", "a.MOV", "notes.txt", "sub/c.mkv", "sub/deeper/d.webm", "sub/e.json"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    return tmp_path


def test_folders_are_searched_recursively_for_video_suffixes(archive, list_videos):
    found = list_videos([str(archive)])
    assert found == [str(archive / p) for p in ("a.MOV", "b.mp4", "sub/c.mkv", "sub/deeper/d.webm")]


def test_files_are_kept_as_given_even_when_missing_or_not_videos(archive, list_videos):
    given = [str(archive / "notes.txt"), str(archive / "missing.mp4")]
    assert list_videos(given) == given  # a bad one becomes a failure row later, not a silent drop


def test_globs_order_and_duplicates(archive, list_videos):
    found = list_videos([str(archive / "b.mp4"), str(archive / "sub" / "**" / "*.*"), str(archive / "b.mp4")])
    assert found[0] == str(archive / "b.mp4") and found.count(str(archive / "b.mp4")) == 1
    assert str(archive / "sub" / "deeper" / "d.webm") in found and str(archive / "sub" / "e.json") in found


def test_nothing_found_says_so(archive, list_videos):
    (archive / "empty").mkdir()
    with pytest.raises(SourceError, match="holds no video files"):
        list_videos([str(archive / "empty")])
    with pytest.raises(SourceError, match="matches no file"):
        list_videos([str(archive / "*.avi")])
