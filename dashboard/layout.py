"""The dashboard's own CSS: the page legend, and phone-sized screens.

At 390×844 (a phone held upright) every page is one column without horizontal page scroll, and
everything tappable is at least 40 px tall. Streamlit stacks columns on narrow screens already;
this keeps the page inside the viewport (wide tables and charts scroll inside themselves) and
makes the tap targets big enough.
"""

from __future__ import annotations

import streamlit as st

CSS = """
/* Wide pages use the width: Streamlit's wide layout keeps 5rem on each side. */
[data-testid="stMainBlockContainer"] { padding-left: 2rem; padding-right: 2rem; max-width: none; }
.pulse-legend { display: flex; flex-wrap: wrap; gap: 4px 16px; margin: 0 0 6px; }
.pulse-chip { display: inline-flex; align-items: center; gap: 6px; font-size: 0.85rem; line-height: 1.6; }
.pulse-chip a { color: inherit; text-decoration: none; border-bottom: 1px dotted currentColor; }
.pulse-swatch { width: 16px; height: 4px; border-radius: 2px; display: inline-block; flex: none; }
.pulse-state { display: inline-block; padding: 1px 10px; border-radius: 10px; color: #fff; font-weight: 600;
               font-size: 0.85rem; vertical-align: middle; }
.pulse-meta { display: flex; flex-wrap: wrap; gap: 4px 18px; font-size: 0.9rem; color: #555; }
.pulse-meta b { color: #222; font-weight: 600; }
@media (max-width: 640px) {
  [data-testid="stMainBlockContainer"], .block-container {
    padding-left: 0.75rem !important; padding-right: 0.75rem !important; max-width: 100vw; }
  [data-testid="stAppViewContainer"], [data-testid="stMain"], section.main { overflow-x: hidden; }
  [data-testid="stHorizontalBlock"] { flex-wrap: wrap !important; gap: 0.25rem 0.5rem !important; }
  [data-testid="stColumn"], [data-testid="column"] {
    width: 100% !important; min-width: 100% !important; flex: 1 1 100% !important; }
  [data-testid="stMainBlockContainer"] button, [data-testid="stMainBlockContainer"] [role="button"],
  [data-testid="stMainBlockContainer"] input, [data-testid="stMainBlockContainer"] textarea,
  [data-testid="stMainBlockContainer"] [data-baseweb="select"] > div,
  [data-testid="stPageLink"] a, .pulse-chip { min-height: 44px; }
  [data-testid="stSegmentedControl"] button { min-height: 44px; }
  [data-testid="stElementContainer"], .stVegaLiteChart, .vega-embed { max-width: 100%; }
  h1 { font-size: 1.45rem !important; }
  .pulse-chip a { padding: 10px 0; }
}
"""


def apply() -> None:
    """Put the CSS on the page (once per script run; it takes no room)."""
    st.html(f"<style>{CSS}</style>")
