"""The Gradio UI: one module per tab, assembled in studio.ui.app. Only this package imports gradio."""
