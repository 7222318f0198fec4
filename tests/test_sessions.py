"""New Gradio sessions are made without describing every block first, and still describe them all
when asked: what took an API caller's first token over 100 ms behind llama.cpp's."""

from __future__ import annotations

import pytest
from gradio import state_holder

from studio.services import Studio
from studio.settings import Settings
from studio.ui import sessions
from studio.ui.app import build_app


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    return build_app(Studio(Settings(data_dir=tmp_path_factory.mktemp("sessions") / "data", offline=True)))


@pytest.fixture
def counted(app, monkeypatch):
    """How many block configs are made from now on."""
    made = []
    config_for_block = app.default_config.config_for_block

    def counting(*args, **kwargs):
        made.append(args[0])
        return config_for_block(*args, **kwargs)

    monkeypatch.setattr(type(app.default_config), "config_for_block", staticmethod(counting))
    return made


def eager(app) -> state_holder.SessionState:
    sessions.uninstall()
    try:
        return state_holder.SessionState(app)
    finally:
        sessions.install()


def test_a_new_session_describes_no_block_until_asked(app, counted):
    session = state_holder.SessionState(app)
    assert counted == []
    some = next(iter(app.default_config.blocks))
    assert some in session.config_values and session.config_values[some]["id"] == some
    assert counted == [some]
    assert len(app.default_config.blocks) > 300  # the studio's page: what made the eager way slow
    assert len(session.config_values) == len(eager(app).config_values)


def test_a_lazy_session_is_what_gradio_would_have_made(app):
    lazy, full = state_holder.SessionState(app), eager(app)
    assert sorted(vars(lazy)) == sorted(vars(full))  # a Gradio that adds a field shows up here
    assert list(lazy.components) == list(full.components)  # deep links read them all, in order
    assert dict(lazy.config_values.items()) == full.config_values


def test_an_updated_block_replaces_its_config(app):
    session = state_holder.SessionState(app)
    key, block = next((k, b) for k, b in app.default_config.blocks.items() if type(b).__name__ == "Textbox")
    session._update_value_in_config(key, "new words")
    assert session.config_values[key]["props"]["value"] == "new words"
    session[key] = block  # an event's update puts a block in the session
    assert session.config_values[key]["props"].get("value") == block.value
    assert session.get(-1) is None and -1 not in session.config_values
