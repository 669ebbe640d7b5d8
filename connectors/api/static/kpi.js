/* The KPI page of passport-hub: draws the programme's figures as SVG, with no library.
 *
 * The figures come inlined in the page (the JSON block #kpi-data, written by
 * connectors/api/kpi.py) and are refreshed from kpi/data.json every minute. Labels are
 * French, numbers formatted for fr-FR (narrow no-break space between thousands, decimal
 * comma). Every bar and point carries its raw figure in data-value, so a test can hold
 * the drawing to the data. */
"use strict";

(() => {
  const NS = "http://www.w3.org/2000/svg";
  const REFRESH_MS = 60000;
  /** A chart's width when the page has no layout yet; otherwise its column's, so that its
   * text is drawn at the page's own size whatever the column. */
  const WIDTH = 760;
  /** Quality lists longer than this show their best-documented entries. */
  const QUALITY_ROWS = 12;
  const RESELLER_BARS = 15;
  const RESELLER_ROWS = 25;

  const number = new Intl.NumberFormat("fr-FR");
  const decimal = new Intl.NumberFormat("fr-FR", {
    minimumFractionDigits: 1, maximumFractionDigits: 1 });
  const percent = new Intl.NumberFormat("fr-FR", {
    style: "percent", minimumFractionDigits: 1, maximumFractionDigits: 1 });
  const dayFormat = new Intl.DateTimeFormat("fr-FR", {
    day: "numeric", month: "short", year: "numeric", timeZone: "UTC" });
  const stampFormat = new Intl.DateTimeFormat("fr-FR", {
    dateStyle: "long", timeStyle: "short", timeZone: "Europe/Paris" });

  const STATUS = {
    assigned: "Attribués, en attente de réponse",
    accepted: "Acceptés",
    queued: "En file d'attente nationale",
    rejected: "Refusés, en réattribution",
    expired: "Délai dépassé, en réattribution",
    won: "Gagnés",
    lost: "Perdus",
    withdrawn: "Retirés (consentement, effacement)",
    duplicate: "Demandes en double",
  };
  const REASONS = {
    budget: "Budget insuffisant",
    no_customer_response: "Client injoignable",
    other_vendor: "Autre prestataire retenu",
    requirement_not_met: "Besoin non couvert",
    not_a_customer: "Hors cible",
    timeline_too_short: "Délai trop court",
    spam: "Demande abusive",
    other: "Autre motif",
  };

  // -- elements --------------------------------------------------------------------------

  function node(doc, name, attrs, parent, text) {
    const made = doc === NS ? document.createElementNS(NS, name) : document.createElement(name);
    for (const [key, value] of Object.entries(attrs || {})) {
      made.setAttribute(key, String(value));
    }
    if (text !== undefined) made.textContent = text;
    if (parent) parent.appendChild(made);
    return made;
  }
  const svg = (name, attrs, parent, text) => node(NS, name, attrs, parent, text);
  const html = (name, attrs, parent, text) => node(null, name, attrs, parent, text);

  function clear(target) {
    while (target.firstChild) target.removeChild(target.firstChild);
    return target;
  }

  function byId(id) {
    const found = document.getElementById(id);
    if (!found) throw new Error(`the page has no #${id}`);
    return found;
  }

  function short(text, most) {
    return text.length > most ? `${text.slice(0, most - 1)}…` : text;
  }

  /** A round axis maximum at or above value (1, 2, 2.5 or 5 times a power of ten). */
  function niceMax(value) {
    if (!(value > 0)) return 1;
    const power = 10 ** Math.floor(Math.log10(value));
    for (const step of [1, 2, 2.5, 5, 10]) {
      if (step * power >= value) return step * power;
    }
    return 10 * power;
  }

  const rate = (value) => (value === null || value === undefined ? "—" : percent.format(value));

  /** The width the chart has on the page (its viewBox is drawn to it). */
  function widthOf(chart) {
    const width = chart.getBoundingClientRect().width;
    return Math.max(320, Math.round(width || WIDTH));
  }

  // -- charts ----------------------------------------------------------------------------

  /** Horizontal bars, one row per item: {key, label, value, text, back?, mark?, cls?}. */
  function bars(target, rows, options) {
    const chart = clear(target);
    const width = widthOf(chart);
    const labelWidth = Math.min(options.labelWidth || 250, Math.round(width * 0.42));
    const valueWidth = Math.min(options.valueWidth || 150, Math.round(width * 0.3));
    const labelChars = Math.floor((labelWidth - 12) / 7);
    const rowHeight = 24;
    const height = 16 + Math.max(rows.length, 1) * rowHeight;
    chart.setAttribute("viewBox", `0 0 ${width} ${height}`);
    chart.setAttribute("role", "img");
    chart.setAttribute("aria-label", options.title);
    if (!rows.length) {
      svg("text", { x: 0, y: 24, class: "empty" }, chart,
        options.empty || "Aucune donnée pour l'instant.");
      return;
    }
    const span = width - labelWidth - valueWidth;
    const top = Math.max(...rows.map((r) => Math.max(r.value, r.back || 0, r.mark || 0)));
    const max = options.max || niceMax(top);
    const scale = (value) => Math.max(0, (value / max) * span);
    rows.forEach((row, index) => {
      const y = 8 + index * rowHeight;
      const group = svg("g", { class: "row", "data-key": row.key }, chart);
      svg("text", { x: labelWidth - 8, y: y + 13, "text-anchor": "end", class: "label" },
        group, short(row.label, labelChars));
      if (row.back !== undefined) {
        const back = svg("rect", { x: labelWidth, y: y + 1, width: scale(row.back), height: 16,
          class: "bar back", "data-value": row.back }, group);
        svg("title", {}, back, `${row.label} : ${row.backText}`);
      }
      const length = scale(row.value);
      const bar = svg("rect", { x: labelWidth, y: y + 1, width: length, height: 16,
        class: `bar ${row.cls || options.cls || ""}`.trim(), "data-key": row.key,
        "data-value": row.value }, group);
      svg("title", {}, bar, `${row.label} : ${row.text}`);
      if (row.mark !== undefined) {
        const x = labelWidth + scale(row.mark);
        svg("line", { x1: x, x2: x, y1: y - 2, y2: y + 20, class: "mark",
          "data-value": row.mark }, group);
      }
      const end = Math.max(length, row.back === undefined ? 0 : scale(row.back),
        row.mark === undefined ? 0 : scale(row.mark));
      svg("text", { x: labelWidth + end + 6, y: y + 13, class: "value" }, group, row.text);
    });
  }

  /** The running total of passports by day against the target. */
  function timeline(target, byDay, national, goal) {
    const chart = clear(target);
    const width = widthOf(chart);
    const height = 300;
    const [left, right, top, bottom] = [80, 30, 24, 40];
    chart.setAttribute("viewBox", `0 0 ${width} ${height}`);
    chart.setAttribute("role", "img");
    chart.setAttribute("aria-label", "Passeports délivrés, total cumulé par jour");
    const series = byDay.series;
    if (!series.length) {
      svg("text", { x: left, y: height / 2, class: "empty" }, chart,
        "Aucun passeport délivré pour l'instant.");
      return;
    }
    const dayOf = (iso) => Date.parse(`${iso}T00:00:00Z`) / 86400000;
    const first = dayOf(series[0].date);
    const last = dayOf(series[series.length - 1].date);
    const plotWidth = width - left - right;
    const x = (iso) => (last === first ? left + plotWidth / 2
      : left + ((dayOf(iso) - first) / (last - first)) * plotWidth);
    const reached = series[series.length - 1].cumulative;
    // The target is drawn to scale once the curve reaches a quarter of it; before that a
    // line at 150 000 would flatten the curve to nothing, so it is written, not drawn.
    const toScale = reached >= goal * 0.25;
    const max = toScale ? niceMax(goal * 1.05) : niceMax(reached * 1.1);
    const y = (value) => top + (1 - value / max) * (height - top - bottom);

    const grid = svg("g", { class: "grid axis" }, chart);
    for (let step = 0; step <= 4; step += 1) {
      const value = (max * step) / 4;
      svg("line", { x1: left, x2: width - right, y1: y(value), y2: y(value) }, grid);
      svg("text", { x: left - 8, y: y(value) + 4, "text-anchor": "end" }, grid,
        number.format(value));
    }
    const ticks = series.length <= 3 ? series
      : [series[0], series[Math.floor((series.length - 1) / 2)], series[series.length - 1]];
    ticks.forEach((point, index) => {
      // The first and last dates keep inside the plot's edges.
      const anchor = ticks.length === 1 ? "middle"
        : index === 0 ? "start" : index === ticks.length - 1 ? "end" : "middle";
      svg("text", { x: x(point.date), y: height - bottom + 18, "text-anchor": anchor }, grid,
        dayFormat.format(new Date(`${point.date}T00:00:00Z`)));
    });

    const points = series.map((p) => `${x(p.date).toFixed(1)},${y(p.cumulative).toFixed(1)}`);
    if (series.length > 1) {
      const base = y(0).toFixed(1);
      svg("path", { class: "area", d: `M${x(series[0].date).toFixed(1)},${base} L${points.join(" L")}`
        + ` L${x(series[series.length - 1].date).toFixed(1)},${base} Z` }, chart);
      svg("polyline", { class: "line", points: points.join(" ") }, chart);
    }
    for (const point of series) {
      const dot = svg("circle", { class: "dot", cx: x(point.date), cy: y(point.cumulative), r: 3.5,
        "data-date": point.date, "data-value": point.cumulative }, chart);
      svg("title", {}, dot, `${dayFormat.format(new Date(`${point.date}T00:00:00Z`))} : `
        + `${number.format(point.issued)} délivrés, ${number.format(point.cumulative)} au total`);
    }
    const label = `Objectif ${number.format(goal)}`;
    if (toScale) {
      svg("line", { class: "target", x1: left, x2: width - right, y1: y(goal), y2: y(goal) },
        chart);
      svg("text", { class: "target-label", x: width - right, y: y(goal) - 6,
        "text-anchor": "end" }, chart, label);
    } else {
      svg("text", { class: "target-label", x: width - right, y: 14, "text-anchor": "end" }, chart,
        `${label} : hors de l'échelle (${percent.format(national.share_of_target)} atteint)`);
    }
    svg("text", { class: "value", x: x(series[series.length - 1].date), y: y(reached) - 10,
      "text-anchor": last === first ? "middle" : "end" }, chart, number.format(reached));
  }

  function card(parent, label, value, detail) {
    const box = html("div", { class: "card" }, parent);
    html("div", { class: "label" }, box, label);
    html("div", { class: "value" }, box, value);
    if (detail) html("div", { class: "detail" }, box, detail);
    return box;
  }

  // -- sections --------------------------------------------------------------------------

  function headline(data) {
    const target = clear(byId("headline"));
    const nat = data.national;
    const goal = data.target.passports;
    card(target, "Passeports délivrés", number.format(nat.passports_issued),
      `${number.format(nat.businesses_enrolled)} entreprises inscrites`);
    const progress = card(target, `Objectif ${number.format(goal)}`,
      percent.format(nat.share_of_target), "de l'objectif national atteint");
    const bar = svg("svg", { class: "progress", viewBox: "0 0 300 14",
      preserveAspectRatio: "none", role: "img",
      "aria-label": `${percent.format(nat.share_of_target)} de l'objectif` }, progress);
    svg("rect", { class: "track", x: 0, y: 0, width: 300, height: 14, rx: 3 }, bar);
    svg("rect", { class: "fill", x: 0, y: 0, rx: 3, height: 14,
      width: Math.min(300, Math.max(nat.passports_issued ? 2 : 0, 300 * nat.share_of_target)),
      "data-value": nat.passports_issued }, bar);
    card(target, "Entreprises inscrites", number.format(nat.businesses_enrolled),
      `${number.format(nat.awaiting_enrolment)} en attente d'inscription`);
    card(target, "Leads", number.format(data.leads.total),
      `${number.format(data.leads.open)} en cours`);
    const sla = data.resellers.sla;
    card(target, "Réponses dans le délai", rate(sla.on_time_rate),
      `${number.format(sla.answered_on_time)} sur ${number.format(sla.due)} échéances`);
  }

  function regions(data) {
    const rows = data.regions
      .map((r) => ({ key: r.region, label: r.name || `Région ${r.region}`,
        value: r.passports_issued, back: r.businesses_enrolled,
        text: `${number.format(r.passports_issued)} / ${number.format(r.businesses_enrolled)}`,
        backText: `${number.format(r.businesses_enrolled)} entreprises inscrites` }))
      .sort((a, b) => b.value - a.value || b.back - a.back || a.label.localeCompare(b.label, "fr"));
    bars(byId("chart-regions"), rows, { title: "Passeports délivrés par région",
      labelWidth: 230 });
  }

  function modules(data) {
    const rows = data.modules.map((m) => ({ key: m.module_id, label: m.title || m.module_id,
      value: m.businesses, text: number.format(m.businesses) }));
    bars(byId("chart-modules"), rows, { title: "Entreprises par module",
      labelWidth: 300, valueWidth: 90 });
  }

  function delegationLabel(data, key) {
    const code = key.replace(/^cefac-/i, "").toUpperCase();
    const found = data.departements.find((d) => d.departement === code);
    return found && found.name ? `${found.departement} · ${found.name}` : key;
  }

  function quality(data) {
    const titles = Object.fromEntries(data.modules.map((m) => [m.module_id, m.title]));
    const draw = (id, entries, field, label, title) => {
      const best = [...entries].sort((a, b) => b.responses - a.responses
        || String(a[field]).localeCompare(String(b[field]), "fr")).slice(0, QUALITY_ROWS);
      bars(byId(id), best.map((e) => ({ key: e[field], label: label(e[field]),
        value: e.average_score,
        text: `${decimal.format(e.average_score)} / 5 · ${number.format(e.responses)} avis` })),
      { title, max: 5, cls: "quality", labelWidth: 300, valueWidth: 200,
        empty: "Aucun avis pour l'instant." });
    };
    const q = data.quality;
    draw("chart-quality-module", q.by_module, "module_id", (k) => titles[k] || k,
      "Note moyenne par module");
    draw("chart-quality-trainer", q.by_trainer_org, "trainer_org", (k) => k,
      "Note moyenne par organisme de formation");
    draw("chart-quality-delegation", q.by_delegation, "delegation",
      (k) => delegationLabel(data, k), "Note moyenne par délégation");
  }

  function leads(data) {
    const l = data.leads;
    const rows = Object.entries(l.by_status).map(([status, count]) => ({ key: status,
      label: STATUS[status] || status, value: count, text: number.format(count),
      cls: `status-${status}` }));
    bars(byId("chart-leads"), rows, { title: "Leads par statut", labelWidth: 290,
      valueWidth: 90 });
    byId("leads-summary").textContent = `${number.format(l.total)} leads, dont `
      + `${number.format(l.open)} en cours · ${number.format(l.reassignments)} réattributions · `
      + `${number.format(l.sla_breaches)} délais de réponse dépassés`;
    const reasons = Object.entries(l.rejections_by_reason).map(([reason, count]) => ({
      key: reason, label: REASONS[reason] || reason, value: count,
      text: number.format(count), cls: "status-rejected" }));
    bars(byId("chart-rejections"), reasons, { title: "Refus par motif", labelWidth: 290,
      valueWidth: 90 });
  }

  /** A reseller's name, with its id where another one shown has the same name. */
  function namer(rows) {
    const seen = {};
    for (const row of rows) seen[row.name] = (seen[row.name] || 0) + 1;
    return (row) => (!row.name ? row.reseller_id
      : seen[row.name] > 1 ? `${row.name} (${row.reseller_id})` : row.name);
  }

  function resellers(data) {
    const r = data.resellers;
    const served = r.by_reseller.filter((row) => row.received > 0 || row.entitlement > 0);
    byId("resellers-summary").textContent = `${number.format(r.known)} revendeurs référencés · `
      + `${number.format(served.length)} concernés par au moins une attribution · `
      + `${number.format(r.leads_received)} leads attribués`;
    const charted = served.slice(0, RESELLER_BARS);
    const chartName = namer(charted);
    bars(byId("chart-resellers"), charted.map((row) => ({
      key: row.reseller_id, label: chartName(row), value: row.received, mark: row.entitlement,
      text: `${number.format(row.received)} · dû ${decimal.format(row.entitlement)}` })),
    { title: "Leads reçus par revendeur, face à leur part due", labelWidth: 230, valueWidth: 130, empty: "Aucun lead attribué pour l'instant." });

    const body = clear(byId("table-resellers").querySelector("tbody"));
    const listed = served.slice(0, RESELLER_ROWS);
    const rowName = namer(listed);
    for (const row of listed) {
      const line = html("tr", { "data-key": row.reseller_id }, body);
      html("td", {}, line, rowName(row));
      html("td", { "data-value": row.received }, line, number.format(row.received));
      html("td", {}, line, rate(row.share_of_leads));
      html("td", {}, line, rate(row.share_of_entitlement));
      html("td", {}, line, number.format(row.accepted));
      html("td", {}, line, number.format(row.rejected));
      const onTime = row.on_time_rate;
      html("td", { class: onTime === null ? "" : onTime >= 0.9 ? "good" : "bad" }, line,
        rate(onTime));
      html("td", {}, line, number.format(row.expired));
    }
    byId("table-note").textContent = served.length > RESELLER_ROWS
      ? `Les ${number.format(RESELLER_ROWS)} revendeurs ayant reçu le plus de leads, sur `
        + `${number.format(served.length)} (tous dans kpi/data.json).` : "";
  }

  let shown = null;

  function render(data) {
    shown = data;
    const at = new Date(data.generated_at);
    byId("as-of").textContent = `données du ${stampFormat.format(at)}`
      + (data.caught_up ? "" : " (relecture des topics en cours)");
    headline(data);
    timeline(byId("chart-over-time"), data.passports_by_day, data.national,
      data.target.passports);
    regions(data);
    modules(data);
    quality(data);
    leads(data);
    resellers(data);
  }

  // -- life ------------------------------------------------------------------------------

  function notice(text) {
    byId("notice").textContent = text;
  }

  async function refresh() {
    try {
      const answer = await fetch("kpi/data.json", { cache: "no-store",
        headers: { Accept: "application/json" } });
      if (!answer.ok) {
        notice(`données non actualisées (HTTP ${answer.status})`);
        return;
      }
      render(await answer.json());
      notice("");
    } catch (error) {
      notice("données non actualisées : le hub ne répond pas");
    }
  }

  render(JSON.parse(byId("kpi-data").textContent));
  document.body.setAttribute("data-rendered", "ok");
  window.setInterval(refresh, REFRESH_MS);
  // The charts are drawn to their column's width: draw them again when it changes.
  let resizing = 0;
  window.addEventListener("resize", () => {
    window.clearTimeout(resizing);
    resizing = window.setTimeout(() => render(shown), 200);
  });
})();
