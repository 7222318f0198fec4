"""One module per model family. Backends take plain requests and return results; they never import gradio."""
