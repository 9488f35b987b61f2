import json

import pytest

from extras.howto100m.subtitles import (
    Cue,
    build_caption_json,
    cues_to_captions,
    find_subtitle_files,
    read_subtitles,
)
from y8m.errors import UsageError

# YouTube ASR WebVTT as youtube-dl writes it: cue settings, word-timing tags, a rolling
# second line, 10 ms "finished line" cues and blank first lines.
ASR_VTT = """WEBVTT
Kind: captions
Language: en

00:00:00.030 --> 00:00:03.560 align:start position:0%
<blank>
hi<00:00:00.539><c> everyone</c><00:00:00.780><c> today</c>

00:00:03.560 --> 00:00:03.570 align:start position:0%
hi everyone today
<blank>

00:00:03.570 --> 00:00:06.769 align:start position:0%
hi everyone today
we're<00:00:03.810><c> going</c><00:00:04.110><c> to</c><00:00:04.230><c> make</c>

00:00:06.769 --> 00:00:06.779 align:start position:0%
we're going to make
<blank>

00:00:06.779 --> 00:00:09.500 align:start position:0%
we're going to make
bread &amp; butter

00:00:09.500 --> 00:00:09.510 align:start position:0%
bread & butter
<blank>

00:00:09.510 --> 00:00:12.000 align:start position:0%
bread & butter
bread<00:00:10.000><c> again</c>
""".replace("<blank>", " ")

MANUAL_VTT = """WEBVTT

STYLE
::cue {
  color: yellow;
}

NOTE written by hand

intro
00:00:01.000 --> 00:00:04.000 line:90% position:50% align:middle
<v Chef>First, <i>chop</i> the onions
into small cubes.

00:00:05.500 --> 00:00:08.250 align:end
Then heat the pan.

1:02:03.5 --> 1:02:05.000
Done.
"""

MANUAL_SRT = """1
00:00:01,000 --> 00:00:04,000
Knead the <i>dough</i>
for ten minutes.

2
00:00:04,000 --> 00:00:06,500
{\\an8}Let it rest.

3
00:00:06,500 --> 00:00:09,000
Let it rest.
"""

# ASR converted to SRT keeps the rolling duplicates.
ROLLING_SRT = """1
00:00:00,000 --> 00:00:02,000
cut the wood

2
00:00:02,000 --> 00:00:04,000
cut the wood
sand the edges

3
00:00:04,000 --> 00:00:06,000
sand the edges
paint it
"""


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return str(path)


def as_tuples(captions):
    return [(round(c.start, 3), round(c.end, 3), c.text) for c in captions]


def test_asr_vtt_rolling_duplicates_become_one_caption_per_line(tmp_path):
    captions = cues_to_captions(read_subtitles(write(tmp_path / "a.en.vtt", ASR_VTT)))
    assert as_tuples(captions) == [
        (0.03, 3.57, "hi everyone today"),
        (3.57, 6.779, "we're going to make"),
        (6.779, 9.51, "bread & butter"),
        (9.51, 12.0, "bread again"),
    ]


def test_manual_vtt_with_cue_settings_styles_and_voices(tmp_path):
    captions = cues_to_captions(read_subtitles(write(tmp_path / "m.vtt", MANUAL_VTT)))
    assert as_tuples(captions) == [
        (1.0, 4.0, "First, chop the onions into small cubes."),
        (5.5, 8.25, "Then heat the pan."),
        (3723.5, 3725.0, "Done."),
    ]


def test_manual_srt_tags_and_repeated_cue(tmp_path):
    captions = cues_to_captions(read_subtitles(write(tmp_path / "s.srt", MANUAL_SRT)))
    assert as_tuples(captions) == [
        (1.0, 4.0, "Knead the dough for ten minutes."),
        (4.0, 9.0, "Let it rest."),  # the repeated cue extends, not duplicates
    ]


def test_rolling_srt(tmp_path):
    captions = cues_to_captions(read_subtitles(write(tmp_path / "r.srt", ROLLING_SRT)))
    assert [c.text for c in captions] == ["cut the wood", "sand the edges", "paint it"]
    assert [(c.start, c.end) for c in captions] == [(0, 2), (2, 4), (4, 6)]


def test_repeat_after_a_gap_is_a_new_caption():
    cues = [Cue(0, 1, ("stir",)), Cue(10, 11, ("stir",)), Cue(11, 12, ("stir", "stir"))]
    captions = cues_to_captions(cues, max_gap=1.0)
    # The rolled-over first line is dropped; the second "stir" is new speech.
    assert as_tuples(captions) == [(0, 1, "stir"), (10, 11, "stir"), (11, 12, "stir")]


@pytest.mark.parametrize(
    "name,content,message",
    [
        ("bad.vtt", "hello\n00:01 --> nonsense\n", "not a valid WebVTT"),
        ("srt_as.vtt", MANUAL_SRT, "not a valid WebVTT"),
        ("bad.srt", "hello there\nnot srt at all\n", "not a valid SRT"),
        ("empty.srt", "", "no subtitle cues"),
        ("subs.txt", MANUAL_SRT, "unknown subtitle extension"),
    ],
)
def test_bad_files_raise_a_clear_error(tmp_path, name, content, message):
    path = write(tmp_path / name, content)
    with pytest.raises(UsageError, match=message) as info:
        read_subtitles(path)
    assert name in str(info.value) and "\n" not in str(info.value)


def test_undecodable_file(tmp_path):
    path = tmp_path / "x.srt"
    path.write_bytes(b"\xff\xfe\x00\x81garbage")
    with pytest.raises(UsageError, match="UTF-8"):
        read_subtitles(str(path))


def test_folder_to_caption_json(tmp_path):
    folder = tmp_path / "subs"
    folder.mkdir()
    write(folder / "vidA.en.vtt", ASR_VTT)
    write(folder / "vidB.srt", MANUAL_SRT)
    write(folder / "broken.vtt", "nope")
    write(folder / "notes.txt", "ignored")
    files = find_subtitle_files(str(folder))
    assert [f.rsplit("/", 1)[1] for f in files] == ["broken.vtt", "vidA.en.vtt", "vidB.srt"]
    with pytest.raises(UsageError, match="broken.vtt"):
        build_caption_json(files, progress=False)
    captions, skipped = build_caption_json(files, skip_bad=True, progress=False)
    assert sorted(captions) == ["vidA", "vidB"] and len(skipped) == 1
    assert captions["vidB"] == {
        "start": [1.0, 4.0],
        "end": [4.0, 9.0],
        "text": ["Knead the dough for ten minutes.", "Let it rest."],
    }


def test_two_files_for_one_video(tmp_path):
    a = write(tmp_path / "vid.en.vtt", ASR_VTT)
    b = write(tmp_path / "vid.en.srt", MANUAL_SRT)
    with pytest.raises(UsageError, match="two subtitle files"):
        build_caption_json([a, b], progress=False)


def test_captions_command(tmp_path):
    from extras.howto100m.commands import Commands

    folder = tmp_path / "subs"
    folder.mkdir()
    write(folder / "vidA.en.vtt", ASR_VTT)
    write(folder / "vidB.srt", ROLLING_SRT)
    out = tmp_path / "caption.json"
    summary = Commands().captions(subtitles=str(folder), output=str(out))
    assert summary["videos"] == 2 and summary["pairs"] == 7
    data = json.loads(out.read_text())
    assert data["vidB"]["text"] == ["cut the wood", "sand the edges", "paint it"]
    with pytest.raises(UsageError, match="does not exist"):
        Commands().captions(subtitles=str(tmp_path / "missing"))
    with pytest.raises(UsageError, match="missing --subtitles"):
        Commands().captions()
