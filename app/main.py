"""igpt-lite app: `streamlit run app/main.py`. Navigation and the shared sidebar only; every page
is a thin caller of igpt_lite/ (see app/common.py)."""
import streamlit as st

from common import model_sidebar

st.set_page_config(page_title="igpt-lite", layout="wide")
pages = [st.Page("views/complete.py", title="Complete an image", default=True),
         st.Page("views/attention.py", title="Attention"),
         st.Page("views/depth.py", title="Feature quality versus depth"),
         st.Page("views/bias.py", title="Bias probes"),
         st.Page("views/palette.py", title="Palette")]
page = st.navigation(pages)
model_sidebar()
page.run()
