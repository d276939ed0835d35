"""Home page: what cnnviz teaches, one card per lesson, and where each dataset will come from."""

import streamlit as st

from cnnviz.catalogue import LESSONS, dataset_sources
from widgets import ui

ui.page_header(
    "cnnviz: see inside a convolutional neural network",
    "Move a slider, watch a kernel, a shape, a training curve or a feature space change.",
)

st.markdown(
    "Each lesson takes one idea from a CNN course and makes it something you can poke at: "
    "the arithmetic of a single filter, the bookkeeping of shapes and parameters, a network "
    "learning in front of you, and experiments that answer *why* one design beats another."
)

columns = st.columns(2)
for index, lesson in enumerate(LESSONS):
    with columns[index % 2].container(border=True):
        st.subheader(lesson.title)
        st.write(lesson.teaches)
        st.markdown(f"**Try this:** {lesson.try_this}")
        ui.lesson_link(lesson)

st.header("Datasets")
st.write("Where each dataset will be loaded from on this server, checked without downloading anything "
         "(a download is promised only when downloads are on and the server it comes from answers). "
         "The lessons offer only the datasets that can load:")
# Fixed widths: all three columns fit the main area beside the sidebar at 1280 px (none off to the right).
st.dataframe(dataset_sources(), hide_index=True, width="stretch",
             column_config={"Dataset": st.column_config.TextColumn(width=120),
                            "Source": st.column_config.TextColumn(width=200),
                            "Why": st.column_config.TextColumn(width=400)})
