"""The dashboard's pages: Streamlit scripts that `dashboard/app.py` routes to (not imported)."""
