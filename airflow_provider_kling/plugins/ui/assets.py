"""The one script the pages carry: links into Airflow's UI open in the top window.

Airflow shows plugin pages in a sandboxed iframe without ``allow-top-navigation``; a plain link
would load Airflow's UI inside the frame. The frame is same-origin, so the script hands the path
to the parent's router instead (history push + popstate, which React Router listens to). Outside a
frame the link behaves normally. Served inline with a CSP hash, so no other script can run.
"""

from __future__ import annotations

import base64
import hashlib

NAV_SCRIPT = (
    "document.addEventListener('click',function(e){"
    "var a=e.target.closest&&e.target.closest('a[data-airflow]');"
    "if(!a||window.top===window)return;"
    "try{var t=window.top;t.history.pushState(null,'',a.getAttribute('href'));"
    "t.dispatchEvent(new PopStateEvent('popstate'));e.preventDefault();}catch(err){}"
    "});"
)
NAV_SCRIPT_SHA256 = base64.b64encode(hashlib.sha256(NAV_SCRIPT.encode()).digest()).decode()
