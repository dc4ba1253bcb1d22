"""ideaforge's user interfaces: the command line (`app.cli`) and the Streamlit chat (`app.streamlit_app`)."""
