"""The Image tab's controls that follow the picked model's family.

Picking a model sets the steps, guidance and size to its own (as Forge's presets switch with the family);
on a CPU a note under the size says how long a step of it will take there (an estimate);
whatever changes the model (a pick, a loaded PNG, a page load) fits the controls to its family: only its
samplers, no negative prompt for FLUX, FLUX.1-dev's guidance named as what it is (distilled), none at all
for guidance-free models, and the flow models' shift and T5 prompt length, hidden for the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from studio.backends.diffusion.families import MAX_SEQUENCE_LENGTH
from studio.backends.diffusion.model_defaults import ModelDefaults
from studio.backends.diffusion.request import MAX_SHIFT
from studio.backends.diffusion.step_time import duration
from studio.errors import StudioError
from studio.services import Studio

PICK_INFO = "steps, guidance and size change to the picked model's own; change them after"
NEGATIVE_INFO = "acts only with guidance above 1"
CFG_LABEL, DISTILLED_LABEL = "Guidance (CFG scale)", "Distilled guidance"
# What the API page says about the two inputs the flow models add at the end of every image endpoint.
FLOW_SETTINGS = {
    "shift": f"SD 3.x and FLUX: the flow sampler's timestep shift, 0-{MAX_SHIFT:g}; 0: the model's own",
    "max_sequence_length": f"SD 3.x and FLUX: the T5 prompt length in tokens, 0-{max(MAX_SEQUENCE_LENGTH.values())}; "
                           "0: the model's own",
}


@dataclass
class FlowControls:
    """The shift and T5 prompt length, in a row shown only for flow-matching models."""

    row: gr.Row
    shift: gr.Number
    max_sequence_length: gr.Number

    @property
    def inputs(self) -> list[gr.Number]:
        return [self.shift, self.max_sequence_length]


def build(defaults: ModelDefaults | None) -> FlowControls:
    with gr.Row(visible=bool(defaults and defaults.family.flow), elem_id="image-flow") as row:
        shift = gr.Number(value=0, minimum=0, maximum=MAX_SHIFT, step=0.5, label="Shift", elem_id="image-shift",
                          info="0: the model's own; higher spends more of the steps on the overall layout")
        length = gr.Number(value=0, precision=0, minimum=0, maximum=max(MAX_SEQUENCE_LENGTH.values()),
                           label="T5 prompt length", elem_id="image-t5-length",
                           info="tokens of the prompt the T5 encoder reads; 0: the model's own")
    return FlowControls(row, shift, length)


def flow_fields(shift: Any, max_sequence_length: Any) -> dict[str, Any]:
    """The request's shift and T5 prompt length as the form gives them; an empty box is 0 (the model's own).
    Anything else goes to the request as sent, which explains it."""
    if shift is None:
        shift = 0.0
    elif isinstance(shift, int) and not isinstance(shift, bool):
        shift = float(shift)
    if max_sequence_length is None:
        max_sequence_length = 0
    elif isinstance(max_sequence_length, float) and max_sequence_length.is_integer():
        max_sequence_length = int(max_sequence_length)
    return {"shift": shift, "max_sequence_length": max_sequence_length}


def defaults_for(studio: Studio, model_id: Any) -> ModelDefaults | None:
    """The model's family and settings, or None for a name not in the catalogue (the run explains it)."""
    try:
        return studio.image.model_defaults(model_id)
    except StudioError:
        return None


def fitted(defaults: ModelDefaults | None, sampler: Any) -> list[dict[str, Any]]:
    """Updates for [sampler, negative prompt, guidance, flow row, shift, T5 length] that fit the family."""
    if defaults is None:
        return [gr.update()] * 6
    family = defaults.family
    samplers = list(family.samplers)
    updates = [gr.update(choices=samplers, value=sampler if sampler in samplers else samplers[0])]
    if family.negative_prompt:
        updates.append(gr.update(interactive=True, info=NEGATIVE_INFO))
    else:
        updates.append(gr.update(value="", interactive=False,
                                 info=f"{family.name} models take no negative prompt: say what you want in the prompt"))
    if family.guidance == "none":
        updates.append(gr.update(value=0, interactive=False, label=CFG_LABEL,
                                 info="this model is guidance-free: it stays at 0"))
    elif family.guidance == "distilled":
        updates.append(gr.update(interactive=True, label=DISTILLED_LABEL,
                                 info="an input of the model, not CFG (one pass per step): about 3.5"))
    else:
        updates.append(gr.update(interactive=True, label=CFG_LABEL, info=f"this model's own: {defaults.guidance:g}"))
    updates.append(gr.update(visible=family.flow))
    if family.flow:
        updates += [gr.update(), gr.update(maximum=MAX_SEQUENCE_LENGTH.get(family.name, 0))]
    else:  # hidden controls keep their values: back to 0 (the model's own), which every family takes
        updates += [gr.update(value=0), gr.update(value=0)]
    return updates


def preset(defaults: ModelDefaults | None, limit: int, max_steps: int) -> list[Any]:
    """Values for [steps, guidance, width, height, shift, T5 length] when a person picks the model."""
    if defaults is None:
        return [gr.skip()] * 6
    side = min(defaults.size, limit)
    return [min(defaults.steps, max_steps), defaults.guidance, side, side, 0, 0]


def model_changed(studio: Studio, model_id: Any, sampler: Any) -> list[dict[str, Any]]:
    """The model dropdown's change handler (a pick, a loaded PNG, a page load)."""
    return fitted(defaults_for(studio, model_id), sampler)


def model_picked(studio: Studio, model_id: Any, limit: int, max_steps: int) -> list[Any]:
    """The model dropdown's input handler (a person's pick only)."""
    return preset(defaults_for(studio, model_id), limit, max_steps)


def step_note(studio: Studio, model_id: Any, width: Any, height: Any, steps: Any, guidance: Any, batch_size: Any = 1,
              batch_count: Any = 1) -> dict[str, Any]:
    """An update for the note under the size: how long a step of the picked model will take on this CPU at this
    size (an estimate, with where its figure comes from); hidden on a GPU, for a model without a timed figure,
    and while a field holds something the run will refuse (the run explains that)."""
    told = None
    try:
        if not on_cluster(studio):
            told = studio.image.step_estimate(model_id, int(width), int(height), int(steps), float(guidance),
                                              int(batch_size), int(batch_count))
    except (StudioError, TypeError, ValueError):
        told = None
    return gr.update(value=f"**{told.headline()}** {told.basis()}" if told else "", visible=told is not None)


def on_cluster(studio: Studio) -> bool:
    """With --ray the steps run on the cluster's machines, whose speed this one's CPU does not tell."""
    return getattr(studio, "cluster", None) is not None


def step_label(studio: Studio, label: str, model_id: str, width: int, height: int, steps: int, guidance: float,
               batch_size: int = 1) -> str:
    """A run's progress text with its estimated step time on this CPU, or as it was."""
    try:
        told = None if on_cluster(studio) else studio.image.step_estimate(model_id, width, height, steps, guidance,
                                                                           batch_size)
    except (StudioError, TypeError, ValueError):
        return label
    return f"{label} (about {duration(told.seconds)} each on this CPU, an estimate)" if told else label


def wire_step_note(studio: Studio, note: gr.Markdown, model: gr.Dropdown, width: gr.Slider, height: gr.Slider,
                   steps: gr.Slider, guidance: gr.Slider, batch_size: gr.Slider, batch_count: gr.Slider) -> None:
    """The step estimate follows the model, the size, the steps, the guidance and the batch."""
    fields = [model, width, height, steps, guidance, batch_size, batch_count]
    gr.on([field.change for field in fields], lambda *values: step_note(studio, *values), fields, note,
          api_visibility="private", show_progress="hidden")


def wire(studio: Studio, model: gr.Dropdown, sampler: gr.Dropdown, negative: gr.Textbox, guidance: gr.Slider,
         steps: gr.Slider, width: gr.Slider, height: gr.Slider, flow: FlowControls, limit: int,
         max_steps: int) -> list:
    """Both handlers on the model dropdown; returns the components `model_changed` updates (for a page load)."""
    fit = [sampler, negative, guidance, flow.row, *flow.inputs]
    model.change(lambda m, s: model_changed(studio, m, s), [model, sampler], fit, api_visibility="private")
    model.input(lambda m: model_picked(studio, m, limit, max_steps), model,
                [steps, guidance, width, height, *flow.inputs], api_visibility="private")
    return fit
