"""Creative presets for the Text tab and the CLI: a system prompt plus the sampling that suits it.

A 135M-parameter model does not follow instructions alone: asked for an image prompt it writes a
sentence about the picture, asked for a poem it writes one long line. So a preset that promises a
shape carries what a small model needs to keep it: example exchanges read before the conversation
(few-shot), a GBNF grammar llama.cpp holds the answer to, and a check of the promised shape that
`benchmarks/text_presets.py` and the tests measure.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Preset:
    name: str
    system: str
    temperature: float = 0.8
    top_p: float = 0.95
    top_k: int = 40
    min_p: float = 0.05
    repetition_penalty: float = 1.1
    max_new_tokens: int = 256
    stop: tuple[str, ...] = ()
    send_to: str | None = None  # the tab this kind of text is made for: "image" or "music"
    hint: str = ""  # what to type, shown as the message box placeholder
    examples: tuple[tuple[str, str], ...] = ()  # (idea, answer) exchanges the model reads first
    grammar: str = ""  # GBNF for the answer; held to on llama.cpp models
    promise: str = ""  # the shape of a good answer, in words
    shape: Callable[[str], bool] | None = None  # whether an answer has that shape

    def guidance(self) -> dict[str, Any]:
        """The request fields that carry this preset's examples and grammar (chat mode)."""
        return {"examples": self.examples, "grammar": self.grammar}


# -- the promised shapes -----------------------------------------------------------------------------

PREAMBLE = re.compile(r"^(here|sure|certainly|this|prompt|the prompt|image prompt|okay|ok|i)\b", re.IGNORECASE)
PHRASE = re.compile(r"[A-Za-z][A-Za-z'\- ]*")


def is_image_prompt(text: str) -> bool:
    """Five or more distinct comma-separated descriptive phrases (1-8 words each), no preamble."""
    text = text.strip()
    if not text or ":" in text or "\n" in text or PREAMBLE.match(text):
        return False
    phrases = [p.strip().lower() for p in text.split(",")]
    if not all(PHRASE.fullmatch(p) and 1 <= len(p.split()) <= 8 for p in phrases):
        return False
    return len(set(phrases)) >= 5


def poem_lines(text: str) -> list[str]:
    """The poem's lines without its title (a first line followed by a blank one)."""
    lines = text.strip().split("\n")
    if len(lines) > 1 and not lines[1].strip():
        lines = lines[2:]
    return [line for line in lines if line.strip()]


def is_poem(text: str) -> bool:
    """Four or more lines (a title apart)."""
    return len(poem_lines(text)) >= 4


def is_song(text: str) -> bool:
    """At least one [Verse ...] and one [Chorus] section, each with a line under it."""
    return bool(re.search(r"^\[Verse[^\]]*\]\n\S", text, re.MULTILINE)
                and re.search(r"^\[Chorus\]\n\S", text, re.MULTILINE))


# -- grammars (GBNF): llama.cpp lets the model pick only tokens that keep the answer in shape --------

IMAGE_PROMPT_GRAMMAR = r"""
root ::= phrase (", " phrase){4,7}
phrase ::= word (" " word){0,5}
word ::= [a-z] [a-z'-]{0,14}
"""

POEM_GRAMMAR = r"""
root ::= title "\n\n" line "\n" line "\n" line "\n" line ("\n" line){0,4}
title ::= [A-Z] [^\n]{2,40}
line ::= [A-Za-z] [^\n]{10,70}
"""

SONG_GRAMMAR = r"""
root ::= "[Verse 1]\n" lines "\n\n[Chorus]\n" lines "\n\n[Verse 2]\n" lines "\n\n[Chorus]\n" lines
lines ::= line "\n" line ("\n" line)?
line ::= [A-Za-z] [^\n\[\]]{8,60}
"""

# -- few-shot examples ---------------------------------------------------------------------------

IMAGE_PROMPT_EXAMPLES = (
    ("a lighthouse in a storm",
     "a lonely lighthouse on a rocky cliff, crashing waves, stormy sea at night, dramatic clouds, "
     "beam of light cutting through rain, deep blue and grey palette, oil painting, highly detailed"),
    ("a cat in a cafe",
     "a ginger cat sleeping on a wooden table, cosy corner cafe, morning sunlight through the window, "
     "warm amber tones, shallow depth of field, watercolour illustration, soft brush strokes"),
    ("an old robot gardener",
     "a rusty old robot watering tomato plants, overgrown greenhouse, wide shot, golden hour light, "
     "green and copper palette, digital painting, cinematic, intricate details"),
)

POEM_EXAMPLES = (
    ("the sea at night",
     "Night Tide\n\nThe moon lays silver on the sea,\nthe waves come whispering to me,\n"
     "a lantern sways on a distant boat,\nand all the stars are left afloat."),
    ("autumn in the city",
     "October Streets\n\nRed leaves skate along the kerb,\nthe bakery windows glow like gold,\n"
     "scarves and footsteps, quick and warm,\nthe city hums against the cold."),
)

SONG_EXAMPLES = (
    ("summer road trip, upbeat pop",
     "[Verse 1]\nWindows down and the radio loud,\nwe left the city and the crowd,\n\n"
     "[Chorus]\nDrive, drive, into the sun,\nsummer's only just begun,\n\n"
     "[Verse 2]\nGas station coffee, a map on your knee,\nnowhere to be but you and me,\n\n"
     "[Chorus]\nDrive, drive, into the sun,\nsummer's only just begun"),
    ("missing home, slow folk",
     "[Verse 1]\nThe kettle sings in an empty room,\nI hum along to an old tune,\n\n"
     "[Chorus]\nTake me back where the river bends,\nwhere every road has a name and friends,\n\n"
     "[Verse 2]\nMy mother's garden, the apple tree,\nthe porch light left on just for me,\n\n"
     "[Chorus]\nTake me back where the river bends,\nwhere every road has a name and friends"),
)


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            "Free writing",
            "You are a warm, imaginative writing partner. Answer in clear, vivid prose.",
            hint="Ask for anything: an idea, a paragraph, a rewrite...",
        ),
        Preset(
            "Poem",
            "You are a poet. Write a short poem with a title and four to eight short lines, each on its own "
            "line: concrete images, fresh metaphors and a clear rhythm. Reply with the poem only.",
            temperature=0.8,
            min_p=0.1,
            max_new_tokens=200,
            hint="A subject or a mood, e.g. 'the sea at night, lonely but calm'",
            examples=POEM_EXAMPLES,
            grammar=POEM_GRAMMAR,
            promise="a title and four or more lines",
            shape=is_poem,
        ),
        Preset(
            "Short story",
            "You are a storyteller. Write a complete short story of at most 400 words: a strong opening "
            "line, a character who wants something, a turn, and an ending that lands.",
            temperature=0.85,
            max_new_tokens=600,
            hint="A premise, e.g. 'a lighthouse keeper finds a letter addressed to her future self'",
        ),
        Preset(
            "Song lyrics",
            "You are a songwriter. Write song lyrics with a [Verse 1], a [Chorus], a [Verse 2] and the "
            "[Chorus] again. Short singable lines that rhyme; a chorus people remember. Lyrics only.",
            temperature=0.8,
            min_p=0.1,
            max_new_tokens=256,
            send_to="music",
            hint="A theme and a genre, e.g. 'summer road trip, upbeat indie pop'",
            examples=SONG_EXAMPLES,
            grammar=SONG_GRAMMAR,
            promise="a [Verse] and a [Chorus]",
            shape=is_song,
        ),
        Preset(
            "Character sketch",
            "You create characters for fiction. For the idea given, describe one character in three short "
            "paragraphs: name and look; voice and habits; what they want, what they fear, and a secret.",
            temperature=0.8,
            max_new_tokens=350,
            hint="A role or a setting, e.g. 'a retired circus strongman who now grows orchids'",
        ),
        Preset(
            "Image-prompt expander",
            "You turn a short idea into one detailed prompt for an image generator. Describe the subject, "
            "setting, composition, lighting, colour palette, art style and medium as one line of "
            "comma-separated phrases. Reply with the prompt only, no introduction.",
            temperature=0.7,
            min_p=0.15,
            max_new_tokens=120,
            stop=("\n\n",),
            send_to="image",
            hint="An idea, e.g. 'a fox reading in a library'",
            examples=IMAGE_PROMPT_EXAMPLES,
            grammar=IMAGE_PROMPT_GRAMMAR,
            promise="five or more comma-separated descriptive phrases, no introduction",
            shape=is_image_prompt,
        ),
    )
}
DEFAULT_PRESET = "Free writing"


def guidance(name: str | None) -> dict[str, Any]:
    """The examples and grammar of the preset called `name` (none for an unknown or empty name)."""
    preset = PRESETS.get(name or "")
    return preset.guidance() if preset else {"examples": (), "grammar": ""}
