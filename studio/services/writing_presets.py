"""Creative presets for the Text tab and the CLI: a system prompt plus the sampling that suits it."""

from __future__ import annotations

from dataclasses import dataclass


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
            "You are a poet. Write short, original poems with concrete images, fresh metaphors and a clear "
            "rhythm. Give the poem a title. Reply with the poem only.",
            temperature=0.9,
            repetition_penalty=1.15,
            max_new_tokens=200,
            hint="A subject or a mood, e.g. 'the sea at night, lonely but calm'",
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
            temperature=0.9,
            repetition_penalty=1.05,
            max_new_tokens=300,
            send_to="music",
            hint="A theme and a genre, e.g. 'summer road trip, upbeat indie pop'",
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
            max_new_tokens=120,
            stop=("\n\n",),
            send_to="image",
            hint="An idea, e.g. 'a fox reading in a library'",
        ),
    )
}
DEFAULT_PRESET = "Free writing"
