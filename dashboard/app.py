"""Pulse dashboard: the entry script Streamlit runs; it routes to the pages under `views/`.

Run it with `pulse dashboard` (or `streamlit run dashboard/app.py` with PULSE_SERVER set). Every
page has its own URL (`/runs`, `/run`, `/charts`, `/system`, `/model`, `/media`, `/sweeps`, `/sql`)
and keeps its state in query parameters, so a link reproduces the view:
`/run?project=P&run=ID`, `/charts?project=P&runs=ID1,ID2`, `/sweeps?project=P&sweep=ID`.
All reads go through `dashboard.data` (the only module with SQL), cached by `dashboard.state`. With
auth on, `dashboard.login` asks for an API key first and every read carries it.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from dashboard import layout
from dashboard.login import gate

VIEWS = Path(__file__).with_name("views")
RUNS = st.Page(VIEWS / "runs.py", title="Runs", icon=":material/table_rows:", url_path="runs")
PAGES = [
    RUNS,
    st.Page(VIEWS / "run.py", title="Run", icon=":material/article:", url_path="run"),
    st.Page(VIEWS / "charts.py", title="Charts", icon=":material/show_chart:", url_path="charts"),
    st.Page(VIEWS / "system.py", title="System", icon=":material/memory:", url_path="system"),
    st.Page(VIEWS / "model.py", title="Model", icon=":material/hub:", url_path="model"),
    st.Page(VIEWS / "media.py", title="Media", icon=":material/image:", url_path="media"),
    st.Page(VIEWS / "sweeps.py", title="Sweeps", icon=":material/tune:", url_path="sweeps"),
    st.Page(VIEWS / "artifacts.py", title="Artifacts", icon=":material/inventory_2:", url_path="artifacts"),
    st.Page(VIEWS / "sql.py", title="SQL", icon=":material/database:", url_path="sql"),
]


def home() -> None:
    """The bare address (`/?project=P`) opens the Runs page, so every page has a URL of its own."""
    st.switch_page(RUNS, query_params=st.query_params.to_dict())


st.set_page_config(page_title="Pulse", page_icon="📈", layout="wide")
layout.apply()
# With auth on, nothing of any project until the user signs in with a key. The pages are still
# declared (menu hidden), so the address a link named is the page shown once signed in.
signed_in = gate()
page = st.navigation([st.Page(home, title="Pulse", url_path="home", default=True, visibility="hidden"), *PAGES],
                     position="top" if signed_in else "hidden")
if signed_in:
    page.run()
