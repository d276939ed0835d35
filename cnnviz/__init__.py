"""cnnviz core: plain functions and dataclasses behind the Streamlit pages.

Nothing in this package imports Streamlit, and TensorFlow/Keras are imported lazily,
inside the functions that build or train a model.
"""

__version__ = "0.1.0"
