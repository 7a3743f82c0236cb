"""/sql: read-only SQL against the store, one statement at a time, with the schema beside it.

The statement runs through the same read-only path as `pulse sql` (the ingest's Query RPC, or a
ClickHouse server with `readonly=2`), so writes, DDL and settings are refused by the server, and an
error shows ClickHouse's own message. A statement from a link (`/sql?sql=...`) fills the editor and
runs only when the user presses Run, so a link alone never reads anything with the visitor's key.
"""

from __future__ import annotations

import time

import altair as alt
import pandas as pd
import streamlit as st

from dashboard.data import DataError
from dashboard.state import fetch, param, refresh_button, set_params, source

MAX_ROWS = 10_000
RAN = "sql-ran"  # the statement this session last ran with the Run button
PUBLIC_TABLES = ("runs", "metrics", "system_metrics", "histograms", "media", "model_graphs", "alerts", "sweeps")
HIDDEN_TABLES = {"api_keys"}
EXAMPLE = """SELECT project, count() AS runs, countIf(state = 'running') AS running,
       countIf(state IN ('failed', 'crashed')) AS failed
FROM runs FINAL
GROUP BY project
ORDER BY runs DESC"""
MARKS = {"line": "Line", "bar": "Bar", "point": "Points"}


def main() -> None:
    refresh_button()
    st.header("SQL", anchor=False)
    editor, schema = st.columns([5, 2], gap="large")
    with schema:
        _schema()
    with editor:
        if "sql-text" not in st.session_state:
            st.session_state["sql-text"] = param("sql") or EXAMPLE
        statement = st.text_area("Read-only SQL (one statement)", key="sql-text", height=180,
                                 help="SELECT, WITH, SHOW, DESCRIBE or EXISTS. Results are limited to "
                                      f"{MAX_ROWS:,} rows.")
        if st.button("Run", type="primary", icon=":material/play_arrow:"):
            st.session_state[RAN] = statement
            set_params(sql=statement.strip() if statement.strip() != EXAMPLE else None)
        # A link's SQL waits for Run: a link alone must not read anything with the visitor's key.
        # Only the example, which is ours, runs on arrival.
        ran = st.session_state.get(RAN)
        if ran is not None and ran.strip() != (param("sql") or EXAMPLE).strip():
            ran = None  # the URL names another statement (a link followed in this session)
        if ran is None and not param("sql"):
            ran = EXAMPLE
        if ran is None:
            st.info("This statement came with the link. Read it, then press **Run** to run it.",
                    icon=":material/pan_tool:")
        else:
            _result(ran)


def _result(statement: str) -> None:
    started = time.perf_counter()
    try:
        table = source().sql(statement, max_rows=MAX_ROWS)
    except DataError as exc:
        message = str(exc).removeprefix("INVALID_ARGUMENT: ")
        st.error(message, icon=":material/error:")
        if "limit for result" in message.lower():
            st.caption(f"The console shows at most {MAX_ROWS:,} rows: add a LIMIT, or aggregate.")
        return
    elapsed_ms = (time.perf_counter() - started) * 1000
    frame = table.to_pandas()
    st.caption(f"{len(frame):,} rows · {len(frame.columns)} columns · {elapsed_ms:,.0f} ms")
    st.dataframe(frame, hide_index=True, width="stretch", height=min(420, 38 + 35 * max(1, len(frame))))
    st.download_button("Download CSV", frame.to_csv(index=False).encode(), file_name="pulse-query.csv",
                       mime="text/csv", icon=":material/download:")
    _quick_chart(frame)


def _quick_chart(frame: pd.DataFrame) -> None:
    numeric = [c for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c])
               and not pd.api.types.is_bool_dtype(frame[c])]
    if frame.empty or not numeric:
        return
    st.subheader("Quick chart", anchor=False)
    x_col, y_col, mark_col = st.columns([2, 3, 3])
    columns = list(frame.columns)
    x = x_col.selectbox("x", columns, index=0)
    ys = y_col.multiselect("y", [c for c in numeric if c != x], default=[c for c in numeric if c != x][:1])
    mark = mark_col.segmented_control("Chart", list(MARKS), format_func=MARKS.get, default="bar"
                                      if not pd.api.types.is_numeric_dtype(frame[x]) else "line") or "line"
    if not ys:
        return
    long = pd.concat([pd.DataFrame({"x": frame[x], "series": y, "value": frame[y]}) for y in ys])
    x_type = ("temporal" if pd.api.types.is_datetime64_any_dtype(frame[x]) else
              "quantitative" if pd.api.types.is_numeric_dtype(frame[x]) else "nominal")
    chart = alt.Chart(long)
    chart = {"line": chart.mark_line(point=len(long) <= 60), "bar": chart.mark_bar(),
             "point": chart.mark_circle(size=50)}[mark]
    st.altair_chart(chart.encode(
        x=alt.X("x", type=x_type, title=x, sort=None if x_type == "nominal" else "ascending",
                axis=alt.Axis(labelAngle=-30, labelLimit=160) if x_type == "nominal" else alt.Undefined),
        y=alt.Y("value:Q", title=ys[0] if len(ys) == 1 else None),
        color=alt.Color("series:N", title=None, legend=alt.Legend(orient="bottom") if len(ys) > 1 else None),
        xOffset=alt.XOffset("series:N") if mark == "bar" and len(ys) > 1 else alt.Undefined,
        tooltip=["x", "series:N", "value:Q"]).properties(height=300), width="stretch")


def _schema() -> None:
    st.markdown("**Schema**")
    try:
        columns = fetch("schema").to_pandas()
    except DataError as exc:
        st.caption(f"Cannot list the tables: {exc}")
        return
    tables = [t for t in dict.fromkeys(columns["table"]) if t not in HIDDEN_TABLES]
    ordered = [t for t in PUBLIC_TABLES if t in tables] + [t for t in tables if t not in PUBLIC_TABLES]
    for table in ordered:
        rows = columns[columns["table"] == table]
        with st.expander(table, expanded=table in ("runs", "metrics")):
            st.markdown("  \n".join(f"`{c}` <span style='color:gray; font-size:0.85em'>{_short(t)}</span>"
                                    for c, t in zip(rows["column"], rows["type"])), unsafe_allow_html=True)
    st.caption("Mutable tables (`runs`, `sweeps`) are read with `FINAL`.")


def _short(type_name: str) -> str:
    return (type_name.replace("LowCardinality(String)", "LowCardinality").replace("DateTime64(6, 'UTC')",
                                                                                  "DateTime64")
            .replace("<", "&lt;"))


main()
