import streamlit as st

st.title("palette")
st.info("This page is being built.")
