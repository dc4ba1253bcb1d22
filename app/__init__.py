"""ideaforge's user interfaces: the command line (`ideaforge.app.cli`) and the Streamlit chat (`ideaforge.app.streamlit_app`)."""
