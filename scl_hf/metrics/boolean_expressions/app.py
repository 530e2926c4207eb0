"""The Space's widget: load the metric from this folder (where a Space keeps it) and serve evaluate's Gradio form."""

import os

import evaluate
from evaluate.utils import launch_gradio_widget

module = evaluate.load(os.path.dirname(os.path.abspath(__file__)))
launch_gradio_widget(module)
