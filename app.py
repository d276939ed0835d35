"""cnnviz entry point: `streamlit run app.py`.

The navigation lists the home page and every lesson of the catalogue (`cnnviz.catalogue.LESSONS`).
Nothing here imports TensorFlow; pages that train models import it lazily.
"""

import streamlit as st

from cnnviz import memory
from cnnviz.catalogue import LESSONS
from widgets import ui

# Before any page imports TensorFlow and its thread pools allocate: all threads share two malloc
# arenas, and TensorFlow's tensors come from malloc, not from a pool that never shrinks
# (cnnviz.memory; issue 15: the server's memory). Each rerun repeats it at no cost.
memory.before_tensorflow()

# Presenter mode (switched on in the sidebar, or by ?presenter=1 in a shared link) collapses the
# sidebar, leaving the whole projector width to the lesson.
presenter = st.session_state.get(ui.PRESENTER_KEY, st.query_params.get("presenter") == "1")
# The tab icon is an emoji, drawn by the browser from a data: URL: a ":material/...:" page icon makes
# every visitor's browser fetch it from fonts.gstatic.com (issue 14: the browser asks only this server).
st.set_page_config(page_title="cnnviz: see inside a CNN", page_icon="🧠", layout="wide",
                   initial_sidebar_state="collapsed" if presenter else "auto")

home = st.Page("app_pages/home.py", title="Home", icon=":material/home:", default=True)
lesson_pages = [
    st.Page(lesson.file, title=lesson.title, icon=lesson.icon, url_path=lesson.url_path)
    for lesson in LESSONS
]
navigation = st.navigation({"cnnviz": [home], "Lessons": lesson_pages})
ui.presenter_toggle()
ui.show_settings_problems()  # Invalid CNNVIZ_* environment settings, also logged.
# Class sessions: a lecturer's "Students follow me", or a student's follow mode (nothing for anyone else).
ui.classroom_sidebar(navigation, {page.url_path: page for page in [home, *lesson_pages]})
try:
    with ui.page_errors():  # The one catch-all: a domain error's message, else an apology with a logged id.
        navigation.run()
finally:
    # Once the server is quiet, the pages' freed memory goes back to the system (cnnviz.memory).
    memory.idle_trimmer.poke()
