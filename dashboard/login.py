"""The dashboard's login: with auth on, no page runs until the user gives an API key.

The key is checked with the ingest (`dashboard.access`), kept in this browser session only
(`st.session_state`; never the URL, never the dashboard's environment) and sent with every query
of the session, so the session sees what the key may read and nothing else. The sidebar shows the
key's scope and a "Log out" button. Without auth, or reading ClickHouse directly, there is no login.
"""

from __future__ import annotations

import streamlit as st

from dashboard import state
from dashboard.access import Access, LoginError, auth_required, check_key
from dashboard.data import DataError, Source


def gate() -> bool:
    """Whether the pages may run: True without auth or once signed in (then the sidebar shows who);
    otherwise draws the login form, or why the ingest could not be asked, and returns False."""
    try:
        server = state.shared_source().server
    except DataError:
        return True  # ClickHouse directly and it is down: the pages say so, as without a login
    if server is None:
        return True  # ClickHouse directly: the URL's user decides what may be read; no API keys
    if state.AUTH_REQUIRED not in st.session_state:
        try:
            st.session_state[state.AUTH_REQUIRED] = auth_required(server)
        except LoginError as exc:
            st.error(str(exc), icon=":material/error:")
            return False
    if not st.session_state[state.AUTH_REQUIRED]:
        return True
    granted = state.access()
    if granted is None:
        _form(server)
        return False
    _who(granted)
    return True


def _form(server: str) -> None:
    st.header("Pulse · sign in", anchor=False)
    st.markdown("This server requires an API key. Ask its admin for one (`pulse keys create --project P "
                "[--read-only]`); the dashboard shows what the key may read, and keeps the key in this "
                "browser tab only, until you log out or close the tab.")
    if reason := st.session_state.pop(state.SIGNED_OUT_REASON, ""):
        st.warning(reason)
    with st.form("login", clear_on_submit=True, border=False, width=520):
        key = st.text_input("API key", type="password", placeholder="pk_…", autocomplete="off")
        submitted = st.form_submit_button("Sign in", type="primary", icon=":material/login:")
    if not submitted:
        return
    key = key.strip()
    reader = Source(server=server, api_key=key)
    try:
        granted = check_key(server, key)
    except (LoginError, DataError) as exc:
        reader.close()
        st.error(str(exc), icon=":material/key_off:")
        return
    state.sign_in(key, granted, reader)
    st.rerun()  # the page the link named, now with the key


def _who(granted: Access) -> None:
    st.sidebar.caption(f"Signed in · {state.md(granted.describe())}")
    if st.sidebar.button("Log out", icon=":material/logout:"):
        state.sign_out()
        st.rerun()
