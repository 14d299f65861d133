"""The workbench's pages, one module per menu entry (app/web/render.py lists the menu)."""
