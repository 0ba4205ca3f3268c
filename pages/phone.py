"""Small-screen fixes that Streamlit 1.67 leaves to the app; app.py calls `phone_fixes()` once
per run. Only functions live here; running this file alone draws nothing.

- The menu closes after a page is tapped. Streamlit collapses its sidebar after a menu tap only
  when the browser's user agent says "mobile" (its `isMobile()` check), so on a narrow tablet, a
  phone asking for the desktop site or a narrow window the menu kept covering the page it had
  just opened. The script below closes it the same way (its own "Collapse sidebar" button)
  whenever the screen is as narrow as the one where Streamlit lays the sidebar over the page
  (its md breakpoint, 768 px), and does nothing where Streamlit already closed it.
- A chart's toolbar (Streamlit's Show data, download and full screen over an ECharts chart) is
  hidden on such screens: a chart toolbar sat on chart titles, and a tap shows it.
"""
import streamlit as st

NARROW_MAX_PX = 768

PHONE_FIXES_HTML = f"""
<style>
@media (max-width: {NARROW_MAX_PX}px) {{
  .stElementContainer:has([data-testid=stEChartsChart]) [data-testid=stElementToolbar] {{
    display: none; }} }}
</style>
<script>
(() => {{
  if (window.__bankmsMenuCloses) return;
  window.__bankmsMenuCloses = true;
  document.addEventListener("click", (event) => {{
    const link = event.target.closest && event.target.closest("[data-testid=stSidebarNav] a");
    if (!link || !window.matchMedia("(max-width: {NARROW_MAX_PX}px)").matches) return;
    // After Streamlit's own handler, which may already have closed the menu.
    setTimeout(() => {{
      const open = document.querySelector("[data-testid=stSidebar][data-collapsed=false]");
      const close = document.querySelector("button[aria-label='Collapse sidebar']");
      if (open && close) close.click();
    }}, 0);
  }}, true);
}})();
</script>
"""


def phone_fixes() -> None:
    """Draw the small-screen fixes (an invisible style and script) into the page."""
    st.html(PHONE_FIXES_HTML, unsafe_allow_javascript=True)
