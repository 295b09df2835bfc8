"""igpt-lite app: `streamlit run app/main.py`. Pages are thin callers of igpt_lite/."""
import streamlit as st

st.set_page_config(page_title="igpt-lite", layout="wide")
pages = [st.Page("pages/complete.py", title="Complete an image", default=True)]
st.navigation(pages).run()
