/// The status page's markup and style (`StatusPage`). Every element the script fills in has an
/// id here; nothing in the markup comes from the host's state.
enum StatusPageMarkup {
    static func document(style: String, script: String) -> String {
        """
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>SSSonector status</title>
        <link rel="icon" href="data:,">
        <style>\(style)</style>
        </head>
        <body>
        <header>
          <h1>SSSonector</h1>
          <span id="status" class="status" role="status">connecting…</span>
          <span class="spacer"></span>
          <button id="logout" type="button" hidden>Sign out</button>
        </header>
        <section id="login" hidden>
          <form id="login-form">
            <h2>Admin token</h2>
            <p>This host asks for a bearer token (<code>--admin-token</code>) before it shows anything.</p>
            <p id="login-error" class="error" hidden></p>
            <input id="token" type="password" autocomplete="current-password" placeholder="token" required>
            <button id="login-submit" type="submit">Sign in</button>
          </form>
        </section>
        <main id="pipelines"></main>
        <dialog id="confirm">
          <h2 id="confirm-title"></h2>
          <p id="confirm-detail"></p>
          <div id="confirm-fields"></div>
          <p class="request"><code id="confirm-request"></code></p>
          <p id="confirm-error" class="error" hidden></p>
          <div class="buttons">
            <button id="confirm-cancel" type="button">Cancel</button>
            <button id="confirm-ok" type="button" class="primary">Confirm</button>
          </div>
        </dialog>
        <div id="toast" role="alert" hidden></div>
        <script>\(script)</script>
        </body>
        </html>

        """
    }

    static let style = #"""
    :root { color-scheme: light dark; --fg: #1d2330; --muted: #667085; --bg: #f4f6f9; --card: #fff;
            --line: #d8dde6; --ok: #1a7f37; --warn: #b54708; --bad: #c4320a; --accent: #2f5bd3; --active: #8a5cd1; }
    @media (prefers-color-scheme: dark) {
      :root { --fg: #e6e9ef; --muted: #98a2b3; --bg: #12151b; --card: #1b2029; --line: #2e3542; --accent: #7aa2ff; }
    }
    * { box-sizing: border-box; }
    [hidden] { display: none !important; }
    body { margin: 0; font: 14px/1.4 system-ui, sans-serif; color: var(--fg); background: var(--bg); }
    header { display: flex; align-items: center; gap: 1em; padding: .6em 1.2em; background: var(--card);
             border-bottom: 1px solid var(--line); position: sticky; top: 0; z-index: 1; }
    h1 { font-size: 1.2em; margin: 0; }
    h2 { font-size: 1.1em; margin: 0; }
    h3 { font-size: 1em; margin: .8em 0 .4em; }
    .spacer { flex: 1; }
    .status::before { content: "●"; margin-right: .4em; color: var(--muted); }
    .status.up::before { color: var(--ok); }
    .status.down { color: var(--bad); font-weight: 600; }
    .status.down::before { color: var(--bad); }
    body.stale main { opacity: .55; }
    main { padding: 1em 1.2em; display: grid; gap: 1em; }
    .card { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 1em; }
    .card-head { display: flex; align-items: baseline; gap: .8em; flex-wrap: wrap; }
    .address { font-family: ui-monospace, monospace; color: var(--muted); }
    .badge { font-size: .8em; padding: .1em .5em; border-radius: 1em; border: 1px solid var(--line); }
    .badge.good { color: var(--ok); border-color: var(--ok); }
    .badge.warn { color: var(--warn); border-color: var(--warn); }
    .badge.bad { color: var(--bad); border-color: var(--bad); }
    .figures { display: grid; grid-template-columns: repeat(auto-fill, minmax(9.5em, 1fr)); gap: .5em; margin: .8em 0; }
    .figure { display: flex; flex-direction: column; padding: .3em .5em; border-left: 3px solid var(--line); }
    .figure .label { color: var(--muted); font-size: .8em; }
    .figure .value { font-size: 1.15em; font-variant-numeric: tabular-nums; }
    .row { display: grid; grid-template-columns: minmax(16em, 2fr) minmax(12em, 1fr); gap: 1em; align-items: start; }
    @media (max-width: 800px) { .row { grid-template-columns: 1fr; } }
    .chart-box { margin: 0; }
    .chart { width: 100%; height: 90px; background: var(--bg); border-radius: 4px; }
    .chart polyline { fill: none; stroke-width: 1.5; vector-effect: non-scaling-stroke; }
    .chart .rate, .key.rate { stroke: var(--accent); color: var(--accent); }
    .chart .active, .key.active { stroke: var(--active); color: var(--active); }
    figcaption { color: var(--muted); font-size: .8em; }
    table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
    th, td { text-align: left; padding: .3em .5em; border-bottom: 1px solid var(--line); white-space: nowrap; }
    th { color: var(--muted); font-weight: 500; font-size: .85em; }
    td.num, th.num { text-align: right; }
    tr.removed td { color: var(--muted); }
    .stages { display: grid; grid-template-columns: repeat(auto-fill, minmax(24em, 1fr)); gap: .8em; }
    .stage { border: 1px solid var(--line); border-radius: 6px; padding: .6em; }
    .stage dl { display: grid; grid-template-columns: auto 1fr; gap: .1em .8em; margin: .4em 0 0; font-size: .9em; }
    .stage dt { color: var(--muted); }
    .stage dd { margin: 0; text-align: right; font-variant-numeric: tabular-nums; }
    .table-scroll { overflow-x: auto; margin-top: .5em; }
    table.records { font-size: .85em; }
    table.records th, table.records td { padding: .2em .4em; }
    button { font: inherit; padding: .15em .7em; border: 1px solid var(--line); border-radius: 4px;
             background: var(--card); color: var(--fg); cursor: pointer; }
    button:hover { border-color: var(--accent); }
    button.primary { background: var(--accent); color: #fff; border-color: var(--accent); }
    td.actions button { margin-right: .3em; font-size: .85em; }
    .muted { color: var(--muted); }
    .error { color: var(--bad); }
    #login { display: flex; justify-content: center; padding: 4em 1em; }
    #login form { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 1.5em; max-width: 26em; }
    #login input { width: 100%; padding: .4em; margin: .3em 0 .8em; font: inherit; }
    dialog { border: 1px solid var(--line); border-radius: 8px; background: var(--card); color: var(--fg); min-width: 24em; }
    dialog::backdrop { background: rgba(0, 0, 0, .35); }
    dialog label { display: block; margin: .4em 0; }
    dialog input { font: inherit; padding: .2em .4em; margin-left: .5em; width: 9em; }
    .request code { font-size: .85em; color: var(--muted); word-break: break-all; }
    .buttons { display: flex; justify-content: flex-end; gap: .5em; }
    #toast { position: fixed; bottom: 1em; right: 1em; background: var(--card); border: 1px solid var(--ok);
             border-radius: 6px; padding: .6em 1em; }
    #toast.error { border-color: var(--bad); }
    """#
}
