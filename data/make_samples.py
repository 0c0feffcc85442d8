"""Generate the Sourcebook sample document set under data/samples/.

How to run (the generator's dependencies are NOT dependencies of the app;
use a throwaway virtual environment outside the repository)::

    python3 -m venv /tmp/samplegen
    /tmp/samplegen/bin/pip install python-docx python-pptx openpyxl reportlab
    /tmp/samplegen/bin/python data/make_samples.py

or, in any environment that already has them::

    pip install python-docx python-pptx openpyxl reportlab && python data/make_samples.py

The output is deterministic: every date, author and identifier is fixed,
Office files (docx/pptx/xlsx) are re-zipped with fixed timestamps and fixed
core-properties dates, and PDFs are written with reportlab's ``invariant=1``.
Running the script twice produces byte-identical files.  It (re)writes only
the files listed below, plus ``data/samples_questions.jsonl``; it deletes
nothing.

The documents belong to a fictional company, Kestrel Ridge Analytics, Inc.
("KRA", e-mail domain kestrelridge.example, intranet intranet.example.com),
which sells the Ridgeline analytics platform.  Every document has a sidecar
``<file name>.meta.json`` with ``groups`` (["everyone"] or ["hr"]), ``title``,
``url`` and ``metadata`` (``department``, ``effective_date``).

Access groups
-------------
HR-only (groups ["hr"]): salary_bands_2025.docx, parental_leave_policy.pdf,
performance_review_process.md, comp_review_timeline_thread.eml,
hr_case_handling_guidelines.txt.  Everything else is ["everyone"].

Needle facts (each stated in exactly one document)
--------------------------------------------------
* IT help desk internal extension is x4357 ("HELP"); after-hours pager
  +1 503 555 0199 -- it_support_contacts.txt
* Portland garage door code rotates on the first Monday of each month and is
  posted only as a pinned message in the #pdx-office Slack channel; EV bays on
  level P2 are limited to 4 hours -- office_facilities_guide.html
* List price of SKU RL-CONN-SAP (SAP connector) is USD 4,800 per year
  -- price_list_2025.xlsx
* Chicago meals & incidentals per diem is USD 86/day (lodging cap USD 260)
  -- per_diem_rates_2025.pdf
* Founders' Day 2025 (company holiday) is Friday 12 September 2025
  -- holiday_calendar_2025.html
* Minimum password length is 14 characters; lockout after 8 failed attempts
  -- security_password_policy.txt
* P1 (critical) support tickets: first response within 30 minutes
  -- customer_support_playbook.docx
* New hires arrive at 9:30 on day one at the 9th-floor reception (Suite 900)
  -- onboarding_handbook.docx
* Starter plan data retention is 90 days -- ridgeline_product_overview.pptx
* Q3 2025 revenue was USD 14.2M -- q3_2025_all_hands.pptx
* The v1 REST API is removed on 2026-06-30 -- ridgeline_4_2_release_notes.txt
* The offsite bus leaves the HQ loading dock at 8:00 on 15 October 2025
  -- q3_offsite_planning_thread.eml
* Trips booked before 1 Jan 2025 for stays starting by 31 Jan 2025 are
  reimbursed under the 2023 rules -- expense_policy_update_thread.eml
* Engineering laptops are refreshed every 36 months -- it_hardware_catalog.xlsx
* A replaced laptop must be returned within 14 days -- laptop_request_howto.md
* A lost badge costs USD 25 to replace -- faq.html
* (hr) L4 Senior Software Engineer band, Portland: USD 158,000-192,000
  -- salary_bands_2025.docx
* (hr) Primary-caregiver parental leave: 18 weeks at full pay
  -- parental_leave_policy.pdf
* (hr) 2025 merit budget is 3.5% of base salary
  -- comp_review_timeline_thread.eml
* (hr) At most 15% of an organisation may be rated 5 (Exceptional)
  -- performance_review_process.md
* (hr) HR case records are kept for 7 years after closure
  -- hr_case_handling_guidelines.txt

Contradictions (old vs new version of one policy)
-------------------------------------------------
expense_policy_2023.pdf (v3.1, effective 2023-03-01) vs
expense_policy_2025.md (v4.0, effective 2025-01-01):
hotel cap USD 180 -> 220 per night; mileage USD 0.655 -> 0.70 per mile;
itemised receipts required from USD 25 -> 75; submit within 60 -> 30 days;
premium economy allowed from 8 -> 6 hours flight time; manager approval
limit USD 2,500 -> 5,000.  The 2025 values are current.

Near-duplicates
---------------
* vpn_setup.html (2024-06-01) vs vpn_setup.md (2025-03-10): the same how-to,
  with one step changed -- the older HTML says to type a 6-digit SMS code for
  MFA, the newer Markdown says to approve a push in the KR Authenticator app
  (SMS was retired); plus a wording tweak or two.
* remote_work_policy.md vs remote_work_policy.docx: the same policy text with
  tiny editorial differences only (no fact differs).
"""

from __future__ import annotations

import datetime as _dt
import io
import json
import re
import textwrap
import zipfile
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "samples"
QUESTIONS = HERE / "samples_questions.jsonl"

FIXED_DT = _dt.datetime(2025, 6, 2, 9, 0, 0)
ZIP_DT = (2025, 6, 2, 9, 0, 0)
AUTHOR = "Kestrel Ridge Analytics"
COMPANY = "Kestrel Ridge Analytics, Inc."
INTRANET = "https://intranet.example.com"

WRITTEN: list[str] = []


def _d(text: str) -> str:
    """Dedent a triple-quoted block and strip the leading newline."""
    return textwrap.dedent(text).lstrip("\n")


def write_meta(name: str, title: str, groups: list[str], path: str, department: str, effective_date: str) -> None:
    meta = {
        "groups": groups,
        "title": title,
        "url": f"{INTRANET}/{path}",
        "metadata": {"department": department, "effective_date": effective_date},
    }
    (OUT / f"{name}.meta.json").write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    WRITTEN.append(name)


def write_text(name: str, content: str) -> None:
    (OUT / name).write_text(content, encoding="utf-8", newline="\n")


def normalize_zip(path: Path) -> None:
    """Rewrite an OOXML zip with fixed timestamps and fixed core dates."""
    with zipfile.ZipFile(path) as zin:
        entries = [(i.filename, zin.read(i.filename)) for i in zin.infolist()]
    stamp = FIXED_DT.strftime("%Y-%m-%dT%H:%M:%SZ")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zout:
        for fname, data in entries:
            if fname == "docProps/core.xml":
                text = data.decode("utf-8")
                for tag in ("dcterms:created", "dcterms:modified"):
                    text = re.sub(rf"(<{tag}[^>]*>)[^<]*(</{tag}>)", rf"\g<1>{stamp}\g<2>", text)
                data = text.encode("utf-8")
            info = zipfile.ZipInfo(fname, date_time=ZIP_DT)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zout.writestr(info, data)
    path.write_bytes(buf.getvalue())


def set_core(props, title: str, subject: str = "") -> None:
    props.author = AUTHOR
    props.last_modified_by = AUTHOR
    props.title = title
    props.subject = subject
    props.created = FIXED_DT
    props.modified = FIXED_DT
    props.revision = 1


# ---------------------------------------------------------------------------
# Markdown
# ---------------------------------------------------------------------------

EXPENSE_2025_MD = _d("""
# Travel & Expense Policy (2025 edition)

| Item | Detail |
| --- | --- |
| Policy owner | Finance, Corporate Controller (Marcus Oyelaran) |
| Version | 4.0 |
| Effective | 1 January 2025 |
| Supersedes | Travel & Expense Policy, version 3.1 (March 2023) |
| Applies to | All Kestrel Ridge Analytics employees and contractors travelling or spending on company business |

## 1. Purpose

Kestrel Ridge Analytics pays for reasonable, necessary business expenses. This
policy tells you what we reimburse, how to book, and how to get paid back
quickly. When the policy is silent, spend the company's money as if it were
your own and ask Finance before you commit.

## 2. Before you travel

- Book flights, hotels and rental cars in **Waypoint**, our travel booking
  portal. Bookings made outside Waypoint are reimbursed only if they are at
  least 10% cheaper than the Waypoint fare shown on the same day (attach a
  screenshot).
- Every trip with airfare needs **manager pre-approval** in Waypoint.
- International trips also need a travel-security check, requested at least
  10 business days before departure.

## 3. Air travel

- Economy class for flights with a scheduled flight time under **6 hours**.
- Premium economy is allowed for any leg of **6 hours or more**.
- Business class needs written CFO approval (for example, a documented
  medical need).
- One checked bag per direction is reimbursed; seat-selection fees up to
  USD 50 per leg are reimbursed.

## 4. Lodging

- The nightly hotel cap is **USD 220 per night**, before taxes and resort or
  city fees, for any city that has no cap of its own.
- Cities with a higher (or lower) cost of living have their own lodging cap
  in the *Per Diem Rates 2025* schedule. Where the schedule lists a city, its
  cap replaces the general cap.
- Short-term rentals are fine if they are under the applicable cap and booked
  through Waypoint.
- Room upgrades, minibar and in-room movies are not reimbursed.

## 5. Meals and incidentals

- While travelling you receive the daily **meals & incidentals (M&IE) per
  diem** for your destination from the Per Diem Rates 2025 schedule. No meal
  receipts are needed when you claim the per diem.
- On the first and last day of a trip you receive 75% of the daily rate.
- Client or candidate meals are reimbursed at cost up to **USD 120 per
  person**, including tax and tip. List every attendee and their company.
- Alcohol is reimbursed only as part of a client meal.

## 6. Ground transportation

- Personal car: **USD 0.70 per mile** (the 2025 rate), plus parking and
  tolls. Your normal commute is not reimbursable.
- Rental cars: compact or midsize. In the United States decline the
  collision damage waiver (our corporate policy covers it); abroad, accept it.
- Taxis and rideshare: standard tier only. Airport parking up to USD 30 per
  day.

## 7. Receipts and submission

- An itemised receipt is required for **every expense of USD 75 or more**,
  and for all lodging regardless of amount. Below USD 75 a short description
  is enough.
- Submit your expense report in **Ledgerline** within **30 days** of the end
  of the trip or the date of the purchase. Reports older than 90 days are not
  reimbursed.
- Approved reports are paid in the next weekly payment run (Thursdays).

## 8. Approvals

| Report total | Approver |
| --- | --- |
| Up to USD 5,000 | Your manager |
| USD 5,000.01 to 15,000 | Your manager and your VP |
| Over USD 15,000 | Your manager, your VP and the CFO |

## 9. Corporate card

Employees who travel more than four times a year may request a corporate card
from Finance. Reconcile card transactions in Ledgerline within 30 days. The
card must never be used for personal purchases, even if you intend to repay.

## 10. Not reimbursable

Personal entertainment, fines and penalties, spouse or family travel,
loyalty-programme fees, lost luggage you did not report to the airline within
24 hours, and upgrades bought with cash.

## 11. Questions

Write to expenses@kestrelridge.example or ask in the #ask-finance channel.
""")

REMOTE_WORK_MD = _d("""
# Remote and Hybrid Work Policy

**Owner:** People Operations - **Effective:** 1 September 2024 - **Version:** 2.2

## Why we have this policy

Kestrel Ridge Analytics hires great people wherever they live. This policy sets
the ground rules that let distributed teams work well together while keeping
our data and our customers' data safe.

## Who it applies to

All employees, except roles that must be on site (Facilities, the hardware
lab and reception). Contractors follow the terms of their contract.

## Work arrangements

- **Remote:** you work from home or a coworking space and visit an office
  when your team plans it.
- **Hybrid:** you are attached to the Portland or Austin office and come in on
  the team's two anchor days, **Tuesday and Thursday**.
- Changing arrangement needs your manager's and your HR business partner's
  approval and takes effect on the first day of a month.

## Core collaboration hours

Everyone is reachable between **10:00 and 15:00 in their own local time
zone** on working days. Put your working hours in your calendar and keep your
chat status current. Teams spread over more than six time zones agree their
own overlap window and write it in the team charter.

## Home office support

| Item | Amount | How to claim |
| --- | --- | --- |
| Home office setup stipend | USD 600, once | Ledgerline, category "Home office", within your first 90 days |
| Internet allowance | USD 50 per month | Added to payroll automatically |
| Monitor, keyboard, headset | Provided by IT | ServiceDesk request |

## Working from another country

You may work from a country other than your country of employment for up to
**20 working days per calendar year**. Ask HR at least 30 days ahead: tax and
immigration rules differ and some countries are not allowed at all.

## Security when working remotely

- Connect to the VPN before reaching any internal system.
- Do not use public Wi-Fi without the VPN.
- Lock your screen whenever you step away; do not let family members use your
  work laptop.
- Print confidential documents only when unavoidable and shred them after use.

## Equipment when you leave

Return company equipment within 10 working days of your last day. IT sends a
prepaid shipping box.

## Questions

Contact your HR business partner or ask in the #ask-people channel.
""")

VPN_MD = _d("""
# How to connect to the corporate VPN

*IT how-to - last updated 10 March 2025 - applies to macOS and Windows laptops*

You need the VPN to reach internal systems (the intranet, Ledgerline, the data
warehouse and the staging environments) from anywhere outside the office
network.

## Before you start

- A company-managed laptop (personal devices cannot connect).
- Your single sign-on (SSO) account.
- The **KR Authenticator** app enrolled on your phone. If you have not enrolled
  yet, follow the MFA enrolment guide first.

## Set up the connection

1. Open **Self Service** (macOS) or **Software Center** (Windows) and install
   **KR Connect**.
2. Start KR Connect and choose **Add connection**. Enter the server address
   `vpn.kestrelridge.example` and name the connection "Kestrel Ridge".
3. Click **Connect** and sign in with your SSO e-mail address and password.
4. Approve the sign-in request that the **KR Authenticator** app pushes to your
   phone, and check that the number on your phone matches the number on your
   screen. (SMS codes were retired in February 2025.)
5. Choose the **Full tunnel** profile. Use **Split tunnel** only if IT has told
   you to, for example on a very slow connection.
6. Check that you are connected by opening the intranet status page at
   `https://status.intranet.example.com`. It should say "You are on the
   corporate network".

## Troubleshooting

- **"Server not reachable":** check that you are online, then switch networks
  (for example to your phone's hotspot). Hotel and airport networks sometimes
  block VPN traffic.
- **No push notification:** open KR Authenticator and pull down to refresh.
  If the request still does not arrive, check that your phone's clock is set
  automatically.
- **Connected but internal sites do not load:** disconnect, wait ten seconds
  and reconnect. If that fails, restart the laptop.
- **Still stuck?** Open a ServiceDesk ticket in the "Network & VPN" category,
  or call the help desk.

## Good practice

- Disconnect when you finish work for the day; sessions end automatically
  after 12 hours.
- Never share your VPN session or your authenticator approvals with anyone.
  IT will never ask you to approve a request you did not start.
""")

LAPTOP_MD = _d("""
# How to request a new or replacement laptop

*IT how-to - last updated 20 January 2025*

Every employee gets a company-managed laptop. Use this guide when you need a
replacement (your laptop is broken, too slow for your work or due for
refresh) or when you are requesting a laptop for a new hire.

## What you can order

Only the standard models in the **IT Hardware Catalog** can be ordered through
the normal process. The catalog lists which model fits which role and when
each model is due for refresh. Non-standard hardware needs the approval of
your director plus a written business justification, and takes longer.

## Step by step

1. Open the ServiceDesk portal and choose **Hardware > New or replacement
   laptop** (form **HW-01**).
2. Pick the request type:
   - *New hire* - enter the new hire's name and start date. Submit at least
     10 business days before the start date.
   - *Replacement - broken* - describe the fault and whether any data is at
     risk.
   - *Replacement - refresh* - your laptop has reached the end of its refresh
     cycle.
   - *Replacement - performance* - explain which work is slowed down.
3. Select the model from the catalog list and your delivery address (office
   or home).
4. Submit. Your manager receives an approval request by e-mail; the request
   waits until they approve it.
5. IT prepares the laptop, enrols it in device management and ships it.
   Delivery takes about **5 business days** in the United States and about
   **10 business days** elsewhere.

## When the new laptop arrives

- Sign in with your SSO account; your apps install automatically within an
  hour.
- Move any local files you still need. Most of your work should already be
  in the company drive.
- **Return the old laptop within 14 days** of receiving the new one, using the
  prepaid label included in the box. Do not wipe it yourself; IT erases and
  recycles it securely.
- Laptops that are not returned within 14 days are locked remotely and your
  manager is notified.

## Loaners

If your laptop breaks and you cannot work, visit the IT bar on the 9th floor
in Portland or the 3rd floor in Austin for a same-day loaner. Remote
employees receive a loaner by overnight courier.
""")

PERF_REVIEW_MD = _d("""
# Performance Review Process (HR internal)

**Confidential - People Operations and people managers only.**
Owner: Priya Raman, VP People - Effective: 1 June 2025

This document describes how the 2025 review cycles run, how ratings are
calibrated, and what HR business partners (HRBPs) check before ratings are
final. Employees receive the summary version on the intranet; this internal
version includes calibration guidance and must not be shared.

## Cycles

| Cycle | Window | What happens |
| --- | --- | --- |
| Mid-year check-in | 2-27 June 2025 | Conversation and written notes only, no rating |
| Annual review | 13 October-5 December 2025 | Self-review, peer feedback, manager rating, calibration |

## Rating scale

1. **Not meeting expectations**
2. **Partially meeting expectations**
3. **Meeting expectations** - the expected rating for a solid year
4. **Exceeding expectations**
5. **Exceptional**

## Annual review timeline

- **13-24 October:** employees write self-reviews and pick 3-5 peer reviewers.
- **27 October-7 November:** peer feedback and manager draft ratings.
- **Week of 10 November:** calibration sessions, run by HRBPs for each
  department.
- **5 December:** ratings final and locked in PeoplePort.
- **8-19 December:** managers deliver reviews to their reports.

## Calibration guidance

- Calibration compares ratings across teams so that the same performance gets
  the same rating everywhere.
- **No more than 15% of an organisation may be rated 5 (Exceptional).** An
  organisation that goes above that needs VP People approval, with a written
  case for each extra 5.
- Ratings of 1 or 2 must be backed by documented feedback given during the
  year; a rating that comes as a surprise to the employee is a process failure.
- Managers may not discuss draft ratings with employees before ratings are
  locked.

## Performance improvement plans

An employee rated 1 is placed on a **60-day performance improvement plan
(PIP)** with written goals and weekly check-ins. The HRBP reviews every PIP
before it is issued. An employee rated 2 twice in a row is also placed on a
PIP.

## Link to compensation

Ratings feed the annual compensation review. Merit increases and promotions
are decided after calibration; see the compensation review timeline sent to
managers each autumn.

## Records

Review documents are kept in PeoplePort. HRBPs may export them only for an
active HR case.
""")

# ---------------------------------------------------------------------------
# HTML
# ---------------------------------------------------------------------------

HTML_HEAD = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<meta name="author" content="Kestrel Ridge Analytics">
</head>
<body>
<header><p>Kestrel Ridge Analytics intranet &middot; {section}</p></header>
<main>
"""
HTML_TAIL = """</main>
<footer><p>&copy; 2025 Kestrel Ridge Analytics, Inc. Internal use only.</p></footer>
</body>
</html>
"""


def html_doc(title: str, section: str, body: str) -> str:
    return HTML_HEAD.format(title=title, section=section) + _d(body) + HTML_TAIL


VPN_HTML = html_doc(
    "How to connect to the corporate VPN",
    "IT how-tos",
    """
<h1>How to connect to the corporate VPN</h1>
<p><em>IT how-to &middot; last updated 1 June 2024 &middot; applies to macOS and Windows laptops</em></p>
<p>You need the VPN to reach internal systems (the intranet, Ledgerline, the data
warehouse and the staging environments) from anywhere outside the office network.</p>

<h2>Before you start</h2>
<ul>
  <li>A company-managed laptop (personal devices cannot connect).</li>
  <li>Your single sign-on (SSO) account.</li>
  <li>A mobile phone number registered in your SSO profile, for the sign-in code.</li>
</ul>

<h2>Set up the connection</h2>
<ol>
  <li>Open <strong>Self Service</strong> (macOS) or <strong>Software Center</strong> (Windows) and install <strong>KR Connect</strong>.</li>
  <li>Start KR Connect and choose <strong>Add connection</strong>. Enter the server address <code>vpn.kestrelridge.example</code> and name the connection "Kestrel Ridge".</li>
  <li>Click <strong>Connect</strong> and sign in with your SSO e-mail address and password.</li>
  <li>Type the <strong>6-digit code sent to your phone by SMS</strong> and click <strong>Verify</strong>. The code expires after 5 minutes.</li>
  <li>Choose the <strong>Full tunnel</strong> profile. Use <strong>Split tunnel</strong> only if IT has told you to, for example on a very slow connection.</li>
  <li>Check that you are connected by opening the intranet status page at <code>https://status.intranet.example.com</code>. It should say "You are on the corporate network".</li>
</ol>

<h2>Troubleshooting</h2>
<ul>
  <li><strong>"Server not reachable":</strong> check that you are online, then switch networks (for example to your phone's hotspot). Hotel and airport networks sometimes block VPN traffic.</li>
  <li><strong>No SMS arrives:</strong> wait one minute and click <strong>Resend code</strong>. Check that the phone number in your SSO profile is correct.</li>
  <li><strong>Connected but internal sites do not load:</strong> disconnect, wait ten seconds and reconnect. If that fails, restart the laptop.</li>
  <li><strong>Still stuck?</strong> Open a ServiceDesk ticket in the "Network &amp; VPN" category, or call the help desk.</li>
</ul>

<h2>Good practice</h2>
<ul>
  <li>Disconnect when you finish work for the day; sessions end automatically after 12 hours.</li>
  <li>Never share your VPN session or your sign-in codes with anyone. IT will never ask you for a code.</li>
</ul>
""",
)

FAQ_HTML = html_doc(
    "Employee FAQ",
    "Help",
    """
<h1>Employee FAQ</h1>
<p>Answers to the questions People Operations, IT and Facilities hear most often.
Last reviewed 1 April 2025. Can't find your answer? Ask in <strong>#ask-people</strong>.</p>

<section>
<h2>Pay and benefits</h2>
<h3>When is payday?</h3>
<p>US employees are paid twice a month, on the 15th and on the last business day of
the month. If the 15th falls on a weekend or holiday you are paid on the business day
before. Dublin employees are paid monthly on the 25th.</p>
<h3>Where do I find my payslips and tax forms?</h3>
<p>In <strong>PeoplePort</strong> under <em>Pay &gt; Documents</em>. Year-end tax forms are
published there by 31 January.</p>
<h3>How do I change my benefits outside open enrollment?</h3>
<p>Only after a qualifying life event (for example marriage, birth or adoption, or a
partner losing coverage). Report the event in PeoplePort within 30 days.</p>
</section>

<section>
<h2>Working here</h2>
<h3>Can I expense a coworking space?</h3>
<p>Yes. Remote employees may expense a coworking membership up to <strong>USD 250 per
month</strong> with their manager's approval. Claim it in Ledgerline under
"Coworking".</p>
<h3>Can I bring my dog to the office?</h3>
<p>Dogs are welcome in the Portland office on Fridays only, must be registered with
Facilities first, and are not allowed in the kitchen or meeting rooms. The Austin
office is dog-free because of the building lease.</p>
<h3>How do I book a meeting room?</h3>
<p>Add the room as a guest in your calendar invitation. Rooms are released
automatically if nobody checks in on the room panel within 10 minutes of the start.</p>
</section>

<section>
<h2>Badges, Wi-Fi and IT</h2>
<h3>I lost my badge. What do I do?</h3>
<p>Report it to Facilities straight away so the badge is deactivated. A replacement
badge costs <strong>USD 25</strong>, deducted from your next paycheck; the first
replacement for a badge that was stolen (with a police report) is free.</p>
<h3>How do guests get on the Wi-Fi?</h3>
<p>Guests use the <strong>KR-Guest</strong> network. The password changes every Monday
and is shown on the screens at reception. Never give guests access to the
employee network.</p>
<h3>Who do I contact for IT problems?</h3>
<p>Open a ticket in the ServiceDesk portal or call the help desk; the numbers and
opening hours are on the IT Support Contacts page.</p>
<h3>Can I install my own software?</h3>
<p>Install what you need from Self Service or Software Center. Anything else needs a
ServiceDesk software request so IT Security can review it.</p>
</section>
""",
)

HOLIDAY_HTML = html_doc(
    "Company Holiday Calendar 2025",
    "People Operations",
    """
<h1>Company Holiday Calendar 2025</h1>
<p>Published by People Operations, 1 January 2025. Offices are closed and no one is
expected to work on the days below. If you must work a company holiday (for example on
the support on-call rota), take a day off in lieu within 60 days.</p>

<h2>United States (Portland and Austin offices, US remote employees)</h2>
<table>
  <thead>
    <tr><th>Holiday</th><th>Date</th><th>Day</th></tr>
  </thead>
  <tbody>
    <tr><td>New Year's Day</td><td>1 January 2025</td><td>Wednesday</td></tr>
    <tr><td>Martin Luther King Jr. Day</td><td>20 January 2025</td><td>Monday</td></tr>
    <tr><td>Presidents' Day</td><td>17 February 2025</td><td>Monday</td></tr>
    <tr><td>Memorial Day</td><td>26 May 2025</td><td>Monday</td></tr>
    <tr><td>Juneteenth</td><td>19 June 2025</td><td>Thursday</td></tr>
    <tr><td>Independence Day</td><td>4 July 2025</td><td>Friday</td></tr>
    <tr><td>Labor Day</td><td>1 September 2025</td><td>Monday</td></tr>
    <tr><td>Founders' Day (company holiday)</td><td>12 September 2025</td><td>Friday</td></tr>
    <tr><td>Thanksgiving</td><td>27 November 2025</td><td>Thursday</td></tr>
    <tr><td>Day after Thanksgiving</td><td>28 November 2025</td><td>Friday</td></tr>
    <tr><td>Winter shutdown</td><td>24 December 2025 &ndash; 1 January 2026</td><td>Wednesday &ndash; Thursday</td></tr>
  </tbody>
</table>

<h2>Ireland (Dublin office)</h2>
<table>
  <thead>
    <tr><th>Holiday</th><th>Date</th><th>Day</th></tr>
  </thead>
  <tbody>
    <tr><td>New Year's Day</td><td>1 January 2025</td><td>Wednesday</td></tr>
    <tr><td>St Brigid's Day</td><td>3 February 2025</td><td>Monday</td></tr>
    <tr><td>St Patrick's Day</td><td>17 March 2025</td><td>Monday</td></tr>
    <tr><td>Easter Monday</td><td>21 April 2025</td><td>Monday</td></tr>
    <tr><td>May Bank Holiday</td><td>5 May 2025</td><td>Monday</td></tr>
    <tr><td>June Bank Holiday</td><td>2 June 2025</td><td>Monday</td></tr>
    <tr><td>August Bank Holiday</td><td>4 August 2025</td><td>Monday</td></tr>
    <tr><td>Founders' Day (company holiday)</td><td>12 September 2025</td><td>Friday</td></tr>
    <tr><td>October Bank Holiday</td><td>27 October 2025</td><td>Monday</td></tr>
    <tr><td>Winter shutdown</td><td>24 December 2025 &ndash; 1 January 2026</td><td>Wednesday &ndash; Thursday</td></tr>
  </tbody>
</table>

<h2>Floating holidays</h2>
<p>Every employee also has <strong>two floating holidays</strong> per calendar year to use for
any cultural, religious or personal occasion. Book them in PeoplePort like vacation; unused
floating holidays do not carry over.</p>

<h2>About Founders' Day</h2>
<p>Kestrel Ridge Analytics was incorporated in September 2016. Founders' Day is our
company-wide day off to mark the anniversary. Customer support keeps a skeleton rota;
those on it receive a day in lieu.</p>
""",
)

FACILITIES_HTML = html_doc(
    "Portland HQ Office and Facilities Guide",
    "Facilities",
    """
<h1>Portland HQ: Office and Facilities Guide</h1>
<p>Facilities team &middot; updated 15 February 2025 &middot; questions to
<a href="mailto:facilities@kestrelridge.example">facilities@kestrelridge.example</a></p>

<h2>Address and hours</h2>
<p>Kestrel Ridge Analytics, 415 Alder Quay, Suite 900, Portland, OR 97209. We occupy the
8th and 9th floors. Reception (9th floor) is staffed from 8:00 to 18:00 on working days.
The building is open to badge holders 6:00&ndash;22:00 every day.</p>

<h2>Parking garage</h2>
<ul>
  <li>Employees may park on levels P1 and P2 of the building garage at no charge.</li>
  <li>The garage door keypad code <strong>changes on the first Monday of every month</strong>. The
      current code is posted <strong>only as a pinned message in the #pdx-office Slack channel</strong>.
      It is never e-mailed, printed or posted on walls.</li>
  <li>Do not share the code with visitors, couriers or contractors. Visitors park on P1 and get
      their ticket validated at reception.</li>
  <li>The EV charging bays on <strong>level P2</strong> are limited to <strong>4 hours</strong>
      per car per day. Move your car when charging is finished so colleagues can charge too.</li>
  <li>Motorcycles use the marked bays next to the P1 lift lobby.</li>
</ul>

<h2>Bikes and showers</h2>
<p>The secure bike room is on P1, behind the lift lobby; your badge opens it. Showers and
lockers are on the 8th floor. Lockers are day-use only and are emptied every Friday at 19:00.</p>

<h2>Kitchen and food</h2>
<p>Coffee, tea, fruit and snacks are free. Lunch is catered on Tuesdays and Thursdays (the
hybrid anchor days); sign up by 10:00 the day before in #pdx-lunch so we can order the
right amount and cover dietary needs.</p>

<h2>Mail and deliveries</h2>
<p>Personal deliveries to the office are allowed for small parcels only. Parcels are held at
reception for five working days.</p>

<h2>Safety</h2>
<ul>
  <li>The fire assembly point is the north lawn of Alder Park, across the street.</li>
  <li>First-aid kits and defibrillators are next to both kitchens.</li>
  <li>Report facilities problems (leaks, broken chairs, temperature) in the ServiceDesk
      portal under "Facilities".</li>
</ul>
""",
)

# ---------------------------------------------------------------------------
# Plain text
# ---------------------------------------------------------------------------

PASSWORD_TXT = _d("""
KESTREL RIDGE ANALYTICS
INFORMATION SECURITY STANDARD IS-04: PASSWORDS AND AUTHENTICATION
Owner: IT Security (Elena Brandt, Director of IT)
Version 3.0, effective 1 February 2025
Classification: Internal

1. PURPOSE

This standard sets the minimum requirements for passwords, passphrases and
multi-factor authentication (MFA) on every Kestrel Ridge Analytics account,
device and system. It applies to employees, contractors and service accounts.

2. PASSWORD REQUIREMENTS

2.1 Length. Passwords must be at least 14 characters long. We recommend a
    passphrase of four or more unrelated words.
2.2 Complexity. No mandatory mix of character classes. Length matters more.
    Passwords are checked against lists of breached and common passwords and
    against your name and user name; matches are rejected.
2.3 Reuse. Never reuse a Kestrel Ridge password on any other site or service,
    and do not reuse any of your last 10 Kestrel Ridge passwords.
2.4 Expiry. Passwords do not expire on a schedule. You must change a password
    immediately if you suspect it has been seen, guessed or leaked, or when IT
    Security tells you to.
2.5 Storage. Store passwords only in VaultBox, the company password manager.
    Do not write passwords down, keep them in documents, or send them in chat
    or e-mail. Share team credentials only through VaultBox shared folders.

3. MULTI-FACTOR AUTHENTICATION

3.1 MFA is required for single sign-on (SSO), the VPN, cloud consoles and
    every system that supports it.
3.2 Approved factors: push approval in the KR Authenticator app with number
    matching, or a FIDO2 hardware security key. Administrators of production
    systems must use a hardware key.
3.3 SMS and voice-call codes are no longer accepted (retired in February 2025).
3.4 Never approve a sign-in request you did not start. Report unexpected
    requests to IT Security at once.

4. ACCOUNT LOCKOUT

After 8 failed sign-in attempts an account is locked for 15 minutes. After
three lockouts in 24 hours the account stays locked until the help desk
verifies your identity by video call.

5. DEVICES

5.1 Screens lock automatically after 5 minutes of inactivity.
5.2 Laptops use full-disk encryption, enforced by device management.
5.3 Mobile phones that access company e-mail or chat need a device passcode
    of at least 6 digits.

6. SERVICE ACCOUNTS

Service-account secrets are generated by the secrets manager, are at least
32 random characters long, are rotated every 90 days, and are never stored in
source code repositories.

7. REPORTING

Report phishing, a leaked password or a lost device immediately to
security@kestrelridge.example or with the "Report phishing" button in your
mail client. Reporting quickly is never punished.

8. EXCEPTIONS

Exceptions need written approval from the Director of IT and are reviewed
every six months.
""")

SUPPORT_CONTACTS_TXT = _d("""
IT SUPPORT CONTACTS
Kestrel Ridge Analytics - IT Service Desk
Updated 1 March 2025

HOW TO REACH US
---------------
Self-service portal:   https://servicedesk.intranet.example.com
E-mail:                 itsupport@kestrelridge.example
Internal phone:         extension 4357 (x4357 - spells "HELP")
External phone:         +1 503 555 0143
Chat:                   #it-help

Opening hours: Monday to Friday, 7:00 to 19:00 Pacific time.
The Dublin office is covered 8:00 to 17:00 Irish time by the Dublin IT bar.

AFTER HOURS
-----------
For urgent problems outside opening hours (for example a P1 customer-facing
outage, or you are locked out before a customer presentation), call the
after-hours pager on +1 503 555 0199. Leave your name, call-back number and a
one-line description; the on-call engineer calls back within 20 minutes.
Non-urgent requests outside opening hours go to the portal.

WALK-UP IT BARS
---------------
Portland: 9th floor, next to the kitchen, 9:00-17:00
Austin:   3rd floor, room 3.12, 10:00-16:00 (Tuesday and Thursday only)
Dublin:   2nd floor, 8:00-17:00

TICKET PRIORITIES
-----------------
P1  Company-wide outage or security incident   response 15 minutes
P2  Many people or one critical system affected response 1 hour
P3  One person cannot work normally             response 4 business hours
P4  Requests and questions                      response 2 business days

Security incidents (phishing, lost or stolen devices, leaked passwords):
always call x4357 or the after-hours pager in addition to e-mailing
security@kestrelridge.example.

IT LEADERSHIP
-------------
Elena Brandt, Director of IT
Rafael Nunez, IT Operations Manager
Mei Takahashi, IT Security Lead
""")

RELEASE_NOTES_TXT = _d("""
RIDGELINE 4.2 RELEASE NOTES
Release date: 20 May 2025
Audience: all employees, customer-facing teams in particular

SUMMARY
Ridgeline 4.2 brings scheduled report exports, faster dashboards on large
workspaces and a rebuilt warehouse sync engine, and starts the
deprecation of the v1 REST API.

NEW FEATURES
- Scheduled exports: any dashboard can be exported as PDF or CSV on a
  schedule (hourly, daily, weekly) and delivered by e-mail or to an S3-
  compatible bucket. Available on Growth and Enterprise plans.
- Warehouse sync 2.0: incremental sync with change-data-capture for supported
  warehouses; full resyncs are no longer needed after schema changes.
- Dashboard query cache: repeated dashboard loads on workspaces with more
  than 50 million rows are on average 3.4x faster in our benchmarks.
- Audit log export: Enterprise workspace admins can stream audit events to
  their SIEM through a webhook.
- Ask Ridgeline (beta): natural-language questions over a dashboard's data
  model. Off by default; workspace admins can enable it.

IMPROVEMENTS
- The chart editor remembers the last colour palette you used.
- CSV uploads accept files up to 2 GB (was 500 MB).
- Row-level security rules can reference user attributes from SSO.
- Accessibility: all charts now have keyboard navigation and text summaries.

FIXES
- Fixed time-zone drift in weekly reports for workspaces in UTC+13.
- Fixed a rare error when duplicating dashboards with more than 40 tiles.
- Fixed SSO sign-in loops on Safari when third-party cookies are blocked.

DEPRECATIONS
- The v1 REST API is deprecated as of this release. It keeps working until
  30 June 2026, when it will be removed. Customers should move to the v2 API;
  the migration guide is on the developer portal. Customer Success will
  contact every account that made v1 calls in the last 90 days.
- The legacy embedded-dashboard script (embed.js v1) will be removed in 4.4.

UPGRADE NOTES
- Cloud workspaces are upgraded automatically during the maintenance window
  of 24-25 May 2025.
- Self-hosted Ridgeline Edge customers can upgrade from 4.0 or later; 3.x
  must upgrade to 4.0 first.

Questions: #ridgeline-release in chat, or product@kestrelridge.example.
""")

HR_CASE_TXT = _d("""
HR CASE HANDLING GUIDELINES
Kestrel Ridge Analytics - People Operations
CONFIDENTIAL: HR team only. Do not forward.
Effective 1 November 2024, owner Tomas Ferreira, Senior HR Business Partner

1. SCOPE

These guidelines cover how the HR team receives, records, investigates and
closes employee relations cases: complaints of harassment or discrimination,
conflicts between colleagues, policy breaches, grievances about pay or
treatment, and reports made through the EthicsLine.

2. INTAKE

- Cases can arrive by e-mail to people-cases@kestrelridge.example, through a
  manager, in person, or anonymously through the EthicsLine (web form or
  phone, run by an external provider).
- Acknowledge every case within 2 business days, even if only to say that it
  has been received and who will handle it.
- Open a record in the HR case tool the same day. Use the case number, never
  names, in e-mail subject lines.

3. TRIAGE

Within 5 business days the assigned HRBP decides, with the Head of Employee
Relations, whether the case needs:
  a) informal resolution (facilitated conversation, coaching);
  b) a formal investigation by an HRBP who has no reporting relationship with
     anyone involved; or
  c) an external investigator - required for any allegation against a
     director or above, and for any allegation of sexual harassment or
     violence.

4. INVESTIGATION

- Interview the person raising the concern first, then witnesses, then the
  person the concern is about. Everyone may bring a colleague to interviews.
- Take notes during interviews, type them up within 24 hours and ask the
  interviewee to confirm them.
- Aim to finish investigations within 30 calendar days; tell all parties if
  it will take longer and why.
- Legal counsel must be consulted before any interim measure such as
  suspension.

5. OUTCOME AND CLOSURE

- Write an outcome letter to the person who raised the concern and to the
  person it was about. Share conclusions, not the full investigation report.
- Record any follow-up actions with owners and dates; check them at 30 and
  90 days after closure.

6. CONFIDENTIALITY AND RETENTION

- Case files are visible only to the HR case team and legal counsel.
- Case records are kept for 7 years after the case is closed, then deleted.
  Records involving litigation are kept until the matter ends, if later.
- Never store case material in personal drives, chat or e-mail folders;
  attach it to the case record.

7. RETALIATION

Retaliation against anyone who raises a concern in good faith, or who takes
part in an investigation, is itself a serious breach. Open a new, separate
case for any report of retaliation.
""")

# ---------------------------------------------------------------------------
# E-mail threads
# ---------------------------------------------------------------------------


def quote(text: str) -> str:
    return "\n".join(("> " + line) if line else ">" for line in text.rstrip("\n").split("\n"))


def make_eml(
    name: str,
    *,
    subject: str,
    sender: str,
    to: str,
    cc: str | None,
    date: str,
    msg_id: str,
    in_reply_to: str | None,
    references: str | None,
    body: str,
) -> None:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    if cc:
        msg["Cc"] = cc
    msg["Subject"] = subject
    msg["Date"] = date
    msg["Message-ID"] = msg_id
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
    if references:
        msg["References"] = references
    body.encode("ascii")  # keep the bodies plain 7-bit ASCII
    msg.set_content(body, cte="7bit")
    data = msg.as_bytes(policy=SMTP.clone(max_line_length=78))
    (OUT / name).write_bytes(data)


EXP_MSG1 = _d("""
Hi everyone,

From 1 January 2025 the new Travel & Expense Policy (version 4.0) replaces
the 2023 edition. The main changes:

- higher lodging caps, including city-specific caps for expensive cities;
- a higher threshold before an itemised receipt is needed;
- a shorter deadline for submitting expense reports, so that we can close
  the books faster;
- premium economy on shorter long-haul flights than before;
- higher manager approval limits, so fewer reports need a VP.

The full policy and the 2025 per diem schedule are on the intranet under
Finance > Policies. Please read them before you book any travel for January.

Thanks,
Dana

Dana Whitfield
Chief Financial Officer, Kestrel Ridge Analytics
""")

EXP_MSG2 = _d("""
Hi Dana,

Thanks for the heads-up. Quick question: I booked my hotel for the Chicago
customer workshop last week, for 12-15 January. Do the new caps apply to
that booking, or the old ones? My rate is a bit above the old cap.

Sam

Sam Okafor
Senior Data Engineer
""")

EXP_MSG3 = _d("""
Hi Sam (and all, since others have asked the same thing),

Transition rule: trips booked in Waypoint before 1 January 2025 for stays
that begin on or before 31 January 2025 are reimbursed under the 2023 rules
or the 2025 rules, whichever is better for you. Everything booked from
1 January 2025 follows the 2025 policy only.

So your Chicago stay is covered under the new city cap. Just add the note
"booked 2024 - transition rule" to the expense line in Ledgerline so the
reviewers know.

Best,
Marcus

Marcus Oyelaran
Corporate Controller, Finance
""")

OFFSITE_MSG1 = _d("""
Hi team,

The Q3 product and engineering offsite is confirmed:

- When: Wednesday 15 and Thursday 16 October 2025
- Where: Cedar Hollow Retreat Center, about 90 minutes from Portland
- Who: product management, design, engineering and data science
- Agenda: 2026 roadmap, Ridgeline 5.0 architecture review, team workshops,
  and a long dinner on Wednesday night

Rooms are shared in pairs unless you ask for a single room. Please RSVP with
the form on the #offsite-2025 channel by Friday 26 September and list any
dietary needs or accessibility requirements.

Remote folks: travel is booked through Waypoint as usual; fly into Portland on
Tuesday 14 October.

Lena

Lena Hart
Head of Product
""")

OFFSITE_MSG2 = _d("""
Hi Lena,

Looks great. Is there transport from the office, or should we drive? A few
of us in the data team don't have cars.

Thanks,
Aisha
""")

OFFSITE_MSG3 = _d("""
Hi Aisha and all,

Yes - we have chartered two buses. They leave from the HQ loading dock on
Alder Quay at 8:00 sharp on Wednesday 15 October and come back to the office
by about 18:30 on Thursday. Please be there by 7:45; the buses will not wait.

If you prefer to drive, mileage is reimbursed as usual and there is free
parking at Cedar Hollow. Please say in the RSVP form whether you take the bus.

Lena
""")

COMP_MSG1 = _d("""
Hi managers and HRBPs,

CONFIDENTIAL - please do not forward outside the management group.

Here is the draft timeline for the 2025 compensation review:

- 1 December: compensation worksheets open in PeoplePort.
- 1-10 December: managers enter merit and promotion proposals.
- Budgets: the merit budget is 3.5% of base salary for each department; the
  promotion budget is a further 1.0% of base.
- Increases take effect on 1 January 2026 and appear in the 15 January 2026
  paycheck.

Priya

Priya Raman
VP People
""")

COMP_MSG2 = _d("""
Hi Priya,

Could you confirm the order of steps? The draft says the worksheets open
on 1 December but ratings lock on 5 December. Do managers submit their
merit proposals before or after ratings are final?

Thanks,
Hannah

Hannah Lindqvist
Director of Engineering
""")

COMP_MSG3 = _d("""
Hi Hannah and all,

Good catch - corrected timeline below. Budgets are unchanged (merit 3.5% of
base, promotion 1.0% of base, per department).

- 8 December: worksheets open in PeoplePort, pre-filled with final ratings
  and the band position of every employee.
- 8-17 December: managers enter merit and promotion proposals. Stay inside
  your budget; any single increase above 10% needs VP approval.
- 18-19 December: HRBPs review proposals for pay equity within each band.
- 9 January 2026: managers tell employees their new salary.
- 1 January 2026 effective date, paid in the 15 January 2026 paycheck
  (including the back-dated amount).

Employees below the minimum of their band after the review are raised to
the minimum automatically; this does not count against the merit budget.

Tomas

Tomas Ferreira
Senior HR Business Partner
""")


def build_emls() -> None:
    # Thread 1: expense policy update (everyone)
    m1_id = "<20241216090500.4411@kestrelridge.example>"
    m2_id = "<20241216113200.7720@kestrelridge.example>"
    m3_id = "<20241217084500.1093@kestrelridge.example>"
    body = (
        EXP_MSG3
        + "\n"
        + "On Mon, 16 Dec 2024 at 11:32, Sam Okafor <sam.okafor@kestrelridge.example> wrote:\n"
        + quote(
            EXP_MSG2
            + "\n"
            + "On Mon, 16 Dec 2024 at 09:05, Dana Whitfield <dana.whitfield@kestrelridge.example> wrote:\n"
            + quote(EXP_MSG1)
        )
        + "\n"
    )
    make_eml(
        "expense_policy_update_thread.eml",
        subject="RE: New Travel & Expense Policy from 1 January 2025",
        sender="Marcus Oyelaran <marcus.oyelaran@kestrelridge.example>",
        to="Sam Okafor <sam.okafor@kestrelridge.example>",
        cc="All Staff <all-staff@kestrelridge.example>, Dana Whitfield <dana.whitfield@kestrelridge.example>",
        date="Tue, 17 Dec 2024 08:45:00 -0800",
        msg_id=m3_id,
        in_reply_to=m2_id,
        references=f"{m1_id} {m2_id}",
        body=body,
    )
    write_meta(
        "expense_policy_update_thread.eml",
        "RE: New Travel & Expense Policy from 1 January 2025",
        ["everyone"],
        "mail/all-staff/2024-12-17-expense-policy-update",
        "Finance",
        "2024-12-17",
    )

    # Thread 2: offsite planning (everyone)
    o1 = "<20250903143000.2231@kestrelridge.example>"
    o2 = "<20250903160400.8812@kestrelridge.example>"
    o3 = "<20250904091500.5507@kestrelridge.example>"
    body = (
        OFFSITE_MSG3
        + "\n"
        + "On Wed, 3 Sep 2025 at 16:04, Aisha Bello <aisha.bello@kestrelridge.example> wrote:\n"
        + quote(
            OFFSITE_MSG2
            + "\n"
            + "On Wed, 3 Sep 2025 at 14:30, Lena Hart <lena.hart@kestrelridge.example> wrote:\n"
            + quote(OFFSITE_MSG1)
        )
        + "\n"
    )
    make_eml(
        "q3_offsite_planning_thread.eml",
        subject="Re: Q3 product & engineering offsite - 15-16 October",
        sender="Lena Hart <lena.hart@kestrelridge.example>",
        to="Product and Engineering <product-eng@kestrelridge.example>",
        cc="Aisha Bello <aisha.bello@kestrelridge.example>",
        date="Thu, 4 Sep 2025 09:15:00 -0700",
        msg_id=o3,
        in_reply_to=o2,
        references=f"{o1} {o2}",
        body=body,
    )
    write_meta(
        "q3_offsite_planning_thread.eml",
        "Re: Q3 product & engineering offsite - 15-16 October",
        ["everyone"],
        "mail/product-eng/2025-09-04-offsite",
        "Product",
        "2025-09-04",
    )

    # Thread 3: comp review timeline (hr)
    c1 = "<20251020101000.3340@kestrelridge.example>"
    c2 = "<20251020134500.9921@kestrelridge.example>"
    c3 = "<20251021083000.6618@kestrelridge.example>"
    body = (
        COMP_MSG3
        + "\n"
        + "On Mon, 20 Oct 2025 at 13:45, Hannah Lindqvist <hannah.lindqvist@kestrelridge.example> wrote:\n"
        + quote(
            COMP_MSG2
            + "\n"
            + "On Mon, 20 Oct 2025 at 10:10, Priya Raman <priya.raman@kestrelridge.example> wrote:\n"
            + quote(COMP_MSG1)
        )
        + "\n"
    )
    make_eml(
        "comp_review_timeline_thread.eml",
        subject="RE: [Confidential] 2025 compensation review timeline and budgets",
        sender="Tomas Ferreira <tomas.ferreira@kestrelridge.example>",
        to="People Managers <people-managers@kestrelridge.example>",
        cc="Priya Raman <priya.raman@kestrelridge.example>, Hannah Lindqvist <hannah.lindqvist@kestrelridge.example>",
        date="Tue, 21 Oct 2025 08:30:00 -0700",
        msg_id=c3,
        in_reply_to=c2,
        references=f"{c1} {c2}",
        body=body,
    )
    write_meta(
        "comp_review_timeline_thread.eml",
        "RE: [Confidential] 2025 compensation review timeline and budgets",
        ["hr"],
        "mail/people-managers/2025-10-21-comp-review",
        "People Operations",
        "2025-10-21",
    )


# ---------------------------------------------------------------------------
# A tiny Markdown subset -> DOCX / PDF converter (headings, paragraphs,
# bullet and numbered lists, pipe tables, **bold**, *italic*, `code`).
# ---------------------------------------------------------------------------

INLINE = re.compile(r"(\*\*[^*]+\*\*|\*[^*\s][^*]*\*|`[^`]+`)")
LIST_RE = re.compile(r"^(\s*)(- |\d+\. )(.*)$")


def parse_blocks(md: str) -> list[tuple[str, object]]:
    lines = md.split("\n")
    blocks: list[tuple[str, object]] = []
    para: list[str] = []

    def flush() -> None:
        if para:
            blocks.append(("p", " ".join(para)))
            para.clear()

    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            flush()
            i += 1
            continue
        m = re.match(r"^(#{1,3}) (.*)$", line)
        if m:
            flush()
            blocks.append((f"h{len(m.group(1))}", m.group(2)))
            i += 1
            continue
        if line.startswith("|"):
            flush()
            rows = []
            while i < len(lines) and lines[i].startswith("|"):
                cells = [c.strip() for c in lines[i].strip().strip("|").split("|")]
                if not all(re.fullmatch(r":?-+:?", c) for c in cells):
                    rows.append(cells)
                i += 1
            blocks.append(("table", rows))
            continue
        m = LIST_RE.match(line)
        if m:
            flush()
            kind = "ul" if m.group(2) == "- " else "ol"
            level = 1 if m.group(1) else 0
            text = m.group(3)
            i += 1
            while i < len(lines) and lines[i].startswith("  ") and lines[i].strip() and not LIST_RE.match(lines[i]):
                text += " " + lines[i].strip()
                i += 1
            blocks.append((kind, (level, text)))
            continue
        para.append(line.strip())
        i += 1
    flush()
    return blocks


def _docx_runs(par, text: str) -> None:
    for part in INLINE.split(text):
        if not part:
            continue
        if part.startswith("**"):
            par.add_run(part[2:-2]).bold = True
        elif part.startswith("`"):
            run = par.add_run(part[1:-1])
            run.font.name = "Consolas"
        elif part.startswith("*") and len(part) > 2:
            par.add_run(part[1:-1]).italic = True
        else:
            par.add_run(part)


def md_to_docx(md: str, name: str, title: str, subject: str) -> None:
    from docx import Document
    from docx.oxml import OxmlElement
    from docx.oxml.ns import qn
    from docx.shared import Pt

    doc = Document()
    doc.styles["Normal"].font.name = "Calibri"
    doc.styles["Normal"].font.size = Pt(11)
    for kind, payload in parse_blocks(md):
        if kind == "h1":
            doc.add_heading(payload, level=0)  # "Title" style
        elif kind == "h2":
            doc.add_heading(payload, level=1)  # "Heading 1"
        elif kind == "h3":
            doc.add_heading(payload, level=2)  # "Heading 2"
        elif kind == "p":
            _docx_runs(doc.add_paragraph(), payload)
        elif kind in ("ul", "ol"):
            level, text = payload
            style = "List Bullet" if kind == "ul" else "List Number"
            if level:
                style += " 2"
            _docx_runs(doc.add_paragraph(style=style), text)
        elif kind == "table":
            rows = payload
            table = doc.add_table(rows=len(rows), cols=len(rows[0]))
            table.style = "Table Grid"
            for r, row in enumerate(rows):
                for c, cell_text in enumerate(row):
                    cell = table.cell(r, c)
                    cell.text = ""
                    par = cell.paragraphs[0]
                    if r == 0:
                        par.add_run(re.sub(r"\*\*", "", cell_text)).bold = True
                    else:
                        _docx_runs(par, cell_text)
            # mark the first row as a repeating header row
            tr_pr = table.rows[0]._tr.get_or_add_trPr()
            hdr = OxmlElement("w:tblHeader")
            hdr.set(qn("w:val"), "true")
            tr_pr.append(hdr)
            doc.add_paragraph()
    set_core(doc.core_properties, title, subject)
    path = OUT / name
    doc.save(path)
    normalize_zip(path)


def _pdf_inline(text: str) -> str:
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", text)
    text = re.sub(r"\*([^*\s][^*]*)\*", r"<i>\1</i>", text)
    return re.sub(r"`([^`]+)`", r'<font name="Courier">\1</font>', text)


def _pdf_table(rows: list[list[str]], col_widths=None):
    from reportlab.lib import colors
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.platypus import Paragraph, Table, TableStyle

    styles = getSampleStyleSheet()
    cell = styles["BodyText"].clone("cell", fontSize=9, leading=11)
    head = cell.clone("head", fontName="Helvetica-Bold")
    data = [[Paragraph(_pdf_inline(c), head if r == 0 else cell) for c in row] for r, row in enumerate(rows)]
    table = Table(data, colWidths=col_widths, repeatRows=1, hAlign="LEFT")
    table.setStyle(
        TableStyle(
            [
                ("GRID", (0, 0), (-1, -1), 0.5, colors.HexColor("#555555")),
                ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#D9E2EC")),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("TOPPADDING", (0, 0), (-1, -1), 3),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 3),
            ]
        )
    )
    return table


def md_to_flowables(md: str, widths: dict[int, list[float]] | None = None) -> list:
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.platypus import PageBreak, Paragraph, Spacer

    styles = getSampleStyleSheet()
    bullet = styles["BodyText"].clone("bullet_", leftIndent=16, bulletIndent=6)
    bullet2 = styles["BodyText"].clone("bullet2_", leftIndent=30, bulletIndent=20)
    story: list = []
    counter = 0
    table_no = 0
    for kind, payload in parse_blocks(md):
        if kind != "ol":
            counter = 0
        if kind == "p" and payload == "[pagebreak]":
            story.append(PageBreak())
        elif kind == "h1":
            story.append(Paragraph(_pdf_inline(payload), styles["Title"]))
        elif kind == "h2":
            story.append(Paragraph(_pdf_inline(payload), styles["Heading1"]))
        elif kind == "h3":
            story.append(Paragraph(_pdf_inline(payload), styles["Heading2"]))
        elif kind == "p":
            story.append(Paragraph(_pdf_inline(payload), styles["BodyText"]))
        elif kind in ("ul", "ol"):
            level, text = payload
            if kind == "ol":
                counter += 1
                mark = f"{counter}."
            else:
                mark = "\u2022"
            story.append(Paragraph(_pdf_inline(text), bullet2 if level else bullet, bulletText=mark))
        elif kind == "table":
            story.append(Spacer(1, 4))
            story.append(_pdf_table(payload, (widths or {}).get(table_no)))
            story.append(Spacer(1, 8))
            table_no += 1
    return story


def build_pdf(name: str, title: str, subject: str, story: list, footer: str) -> None:
    from reportlab.lib.pagesizes import LETTER
    from reportlab.lib.units import inch
    from reportlab.platypus import SimpleDocTemplate

    def on_page(canvas, doc):
        canvas.saveState()
        canvas.setFont("Helvetica", 8)
        canvas.drawString(inch, 0.6 * inch, footer)
        canvas.drawRightString(LETTER[0] - inch, 0.6 * inch, f"Page {doc.page}")
        canvas.restoreState()

    doc = SimpleDocTemplate(
        str(OUT / name),
        pagesize=LETTER,
        title=title,
        author=AUTHOR,
        subject=subject,
        creator=AUTHOR,
        producer="Kestrel Ridge document generator",
        invariant=1,
        leftMargin=inch,
        rightMargin=inch,
        topMargin=inch,
        bottomMargin=inch,
    )
    doc.build(story, onFirstPage=on_page, onLaterPages=on_page)


# ---------------------------------------------------------------------------
# DOCX sources
# ---------------------------------------------------------------------------

ONBOARDING_DOCX = _d("""
# New Hire Onboarding Handbook

*People Operations - January 2025 edition*

## Welcome to Kestrel Ridge

We are glad you are here. Kestrel Ridge Analytics builds Ridgeline, the
analytics platform that more than six hundred companies use to agree on their
numbers. This handbook walks you through your first day, your first week and
your first three months. Keep it open; most of your early questions are
answered here. - Owen Castellanos, CEO

## Your first day

If you work from Portland, arrive at **9:30 on your first day at the 9th-floor
reception (Suite 900, 415 Alder Quay)**. Remote new hires join the video welcome
at 9:30 Pacific time; the link arrives by e-mail the Friday before.

- Bring a government-issued photo ID (US employees need it for the I-9 form).
- Reception takes your badge photo; your badge is ready before lunch.
- Your laptop is handed over at the IT bar at 11:00. Remote new hires receive
  it by courier before their start date.
- Lunch is with your team and your onboarding buddy.

## Your first week

### Schedule

| Day | Time | Session | Host |
| --- | --- | --- | --- |
| Monday | 9:30 | Welcome, paperwork and badge photo | People Operations |
| Monday | 11:00 | Laptop setup and accounts | IT bar |
| Monday | 13:30 | Meet your onboarding buddy | Your buddy |
| Tuesday | 10:00 | Company history and strategy | Owen Castellanos, CEO |
| Tuesday | 14:00 | Security awareness training | IT Security |
| Wednesday | 10:00 | Ridgeline product tour | Product Management |
| Wednesday | 15:00 | Benefits enrolment walkthrough | People Operations |
| Thursday | 10:00 | Customer stories | Customer Success |
| Friday | 11:00 | First one-to-one and 30/60/90 plan | Your manager |
| Friday | 16:00 | Friday demo hour | Everyone |

### Accounts and tools

- **SSO** - one sign-in for everything below; set up MFA on day one.
- **PeoplePort** - your HR record, payslips, time off and benefits.
- **Ledgerline** - expense reports.
- **Waypoint** - booking business travel.
- **ServiceDesk** - IT and Facilities requests.
- **VaultBox** - the company password manager.

## Your onboarding buddy

Every new hire is paired with a buddy from a neighbouring team for the first
30 days. Your buddy is not your manager: they are the person to ask the
questions you feel you should already know the answer to. You and your buddy
may expense up to USD 40 for coffee or lunch during those 30 days
(Ledgerline category "Onboarding").

## Required training

Complete these courses in PeoplePort within **30 days** of your start date:

1. Security awareness (about 2 hours).
2. Code of conduct (45 minutes).
3. Data privacy and handling customer data (1 hour).
4. Harassment prevention (length depends on your state or country).

## Your first 90 days

### Days 1-30: learn

- Meet everyone on your team and your key partners one-to-one.
- Ship one small change, document or customer answer.

### Days 31-60: contribute

- Own a piece of work end to end with support from your manager.
- Give your manager feedback on this onboarding process.

### Days 61-90: own

- Agree your goals for the next review cycle with your manager.
- Help the next new hire on your team find their way around.

## Time off and benefits

US employees accrue 20 days of vacation a year from day one, plus the company
holidays and two floating holidays. Enrol in benefits in PeoplePort within 30
days of your start date; if you miss the window you must wait for the next open
enrolment.

## Who to ask

- People questions: your HR business partner or #ask-people.
- Money and expenses: #ask-finance.
- Laptops, accounts and access: the ServiceDesk portal or #it-help.
- The building: Facilities, facilities@kestrelridge.example.
""")

SUPPORT_PLAYBOOK_DOCX = _d("""
# Customer Support Playbook

*Customer Success - version 2.1, effective 15 March 2025 - owner: Grace Mbeki, VP Customer Success*

## Principles

- Answer the customer's real problem, not just the question they typed.
- Say what you will do next and when, and then do it.
- One owner per ticket, from first response to close.
- Write everything in the ticket; if it is not in the ticket it did not happen.

## Severity levels and response targets

Severity is set by the support engineer, not by the customer, using the
definitions below. The targets apply to Growth and Enterprise customers;
Starter customers receive e-mail support with P3 targets for every ticket.

| Severity | Definition | First response | Updates | Target resolution |
| --- | --- | --- | --- | --- |
| P1 Critical | Production workspace down, data loss, or a security incident affecting the customer | 30 minutes, 24/7 | Every 60 minutes | Workaround within 4 hours, fix within 8 hours |
| P2 High | A major feature is broken with no workaround | 2 business hours | Every 4 business hours | 2 business days |
| P3 Normal | A feature misbehaves but a workaround exists | 1 business day | Daily | 10 business days |
| P4 Low | Questions, how-to requests, feature requests | 3 business days | As needed | Answered or logged as a feature request |

## Escalation

### When to escalate

- Any P1, immediately.
- A P2 that will miss its first-response or update target.
- A customer who mentions cancelling, legal action or the press.
- Anything you are unsure about - escalating early is never wrong.

### How to escalate

1. Post the ticket link in #support-escalations with the severity and a
   one-line summary.
2. For P1, also page the support engineering on-call from the ticket's
   "Page on-call" button.
3. For Enterprise customers, add their named technical account manager (TAM)
   to the ticket.

## Writing to customers

- Use the customer's name and plain language; avoid internal code names.
- Never promise a release date for a fix. Say "we will update you by" a time
  you control.
- Do not share other customers' names, data or incidents.

## Credits and refunds

Service credits follow the customer's uptime SLA (99.5% on Growth, 99.9% on
Enterprise). Support engineers may approve goodwill credits up to **USD 500**
per customer per quarter. Larger credits and any refund need approval from the
VP Customer Success.

## Handoffs between regions

Support follows the sun: Portland hands open P1 and P2 tickets to Dublin at
the end of the Pacific day, and Dublin hands them back in the morning.

- Write a handoff note in the ticket: current status, what was tried, the
  next step and the customer's latest expectation.
- Announce each handed-off ticket in #support-handoff.
- The receiving engineer confirms ownership within 15 minutes.
""")

SALARY_BANDS_DOCX = _d("""
# Salary Bands 2025

*CONFIDENTIAL - People Operations and approved hiring managers only. Effective 1 January 2025.*

## How to use these bands

Bands show annual base salary in US dollars for the **Portland reference
location** (100%). For other locations multiply by the geographic
differential below. Bands do not include bonus, commission or equity.

- New offers should be at or below the band **midpoint**. Offers above the
  midpoint need VP approval; offers above the maximum are not allowed.
- Employees below the band minimum are raised to the minimum in the next
  compensation review.
- Bands are reviewed every year in Q4 against market survey data.

## Engineering

| Level | Title | Minimum | Midpoint | Maximum |
| --- | --- | --- | --- | --- |
| L1 | Associate Software Engineer | 92,000 | 108,000 | 124,000 |
| L2 | Software Engineer | 112,000 | 131,000 | 150,000 |
| L3 | Software Engineer II | 134,000 | 155,000 | 176,000 |
| L4 | Senior Software Engineer | 158,000 | 175,000 | 192,000 |
| L5 | Staff Software Engineer | 188,000 | 210,000 | 232,000 |
| L6 | Senior Staff Software Engineer | 222,000 | 249,000 | 276,000 |
| L7 | Principal Software Engineer | 262,000 | 293,500 | 325,000 |

## Go-to-market

| Level | Role | Base minimum | Base maximum | Target variable pay |
| --- | --- | --- | --- | --- |
| S1 | Sales Development Representative | 58,000 | 72,000 | 30,000 |
| S2 | Account Executive, Mid-Market | 92,000 | 118,000 | 100,000 |
| S3 | Account Executive, Enterprise | 128,000 | 160,000 | 150,000 |
| C2 | Customer Success Manager | 88,000 | 112,000 | 15,000 |
| C3 | Senior Customer Success Manager | 108,000 | 136,000 | 20,000 |

## Geographic differentials

| Location | Differential |
| --- | --- |
| Portland, OR (reference) | 100% |
| Austin, TX | 95% |
| US remote, tier A metros (New York, San Francisco, Seattle, Boston) | 108% |
| US remote, all other locations | 92% |
| Dublin, Ireland | Separate EUR bands, published by the Dublin HR team |

## Confidentiality

Do not share this document or screenshots of it outside People Operations and
the hiring managers approved for an open role. Employees may be told the band
for their own level and location.
""")


def remote_work_docx_source() -> str:
    """The DOCX copy of the remote-work policy: same text, tiny edits."""
    text = REMOTE_WORK_MD
    edits = [
        ("hires great people wherever they live.", "hires great people wherever they happen to live."),
        (
            "Put your working hours in your calendar and keep your\nchat status current.",
            "Keep your chat status current and put your working hours\nin your calendar.",
        ),
        ("IT sends a\nprepaid shipping box.", "IT will send you a\nprepaid shipping box."),
        (
            "Contact your HR business partner or ask in the #ask-people channel.",
            "Contact your HR business partner, or ask in #ask-people.",
        ),
    ]
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new)
    return text


# ---------------------------------------------------------------------------
# PDF sources
# ---------------------------------------------------------------------------

EXPENSE_2023_PDF = _d("""
# Travel & Expense Policy

**Policy owner:** Finance, Corporate Controller. **Version:** 3.1. **Effective:** 1 March 2023.
**Applies to:** all Kestrel Ridge Analytics employees and contractors travelling or spending on company business.

## 1. Purpose

Kestrel Ridge Analytics pays for reasonable, necessary business expenses. This
policy tells you what we reimburse, how to book, and how to get paid back.
When the policy is silent, spend the company's money as if it were your own
and ask Finance before you commit.

## 2. Before you travel

- Book flights, hotels and rental cars in **Waypoint**, our travel booking portal.
- Every trip with airfare needs manager pre-approval in Waypoint.
- International trips also need a travel-security check before departure.

## 3. Air travel

- Economy class for flights with a scheduled flight time under **8 hours**.
- Premium economy is allowed for any leg of **8 hours or more**.
- Business class needs written CFO approval.
- One checked bag per direction is reimbursed.

## 4. Lodging

- The nightly hotel cap is **USD 180 per night**, before taxes and fees, in
  every city.
- If no hotel is available under the cap, ask Finance for an exception before
  you book and attach the approval to your expense report.
- Room upgrades, minibar and in-room movies are not reimbursed.

## 5. Meals and incidentals

- Meals while travelling are reimbursed at cost, up to USD 75 per day.
- Client or candidate meals are reimbursed up to **USD 100 per person**,
  including tax and tip. List every attendee and their company.
- Alcohol is reimbursed only as part of a client meal.

## 6. Ground transportation

- Personal car: **USD 0.655 per mile** (the 2023 rate), plus parking and tolls.
  Your normal commute is not reimbursable.
- Rental cars: compact or midsize only.
- Taxis and rideshare: standard tier only.

## 7. Receipts and submission

- An itemised receipt is required for **every expense of USD 25 or more**, and
  for all lodging.
- Submit your expense report in **Ledgerline** within **60 days** of the end of
  the trip or the date of the purchase.

## 8. Approvals

| Report total | Approver |
| --- | --- |
| Up to USD 2,500 | Your manager |
| USD 2,500.01 to 10,000 | Your manager and your VP |
| Over USD 10,000 | Your manager, your VP and the CFO |

## 9. Not reimbursable

Personal entertainment, fines and penalties, spouse or family travel,
loyalty-programme fees and upgrades bought with cash.

## 10. Questions

Write to expenses@kestrelridge.example.
""")

PER_DIEM_INTRO = _d("""
# Per Diem Rates 2025

**Finance - schedule to the Travel & Expense Policy (2025 edition). Effective 1 January 2025.**

## 1. How per diems work

A per diem is a fixed daily amount for meals and incidental expenses (M&IE)
while you travel on company business. You claim the per diem for your
destination in Ledgerline instead of submitting meal receipts. Incidentals
include tips for porters and housekeeping, and laundry on trips of five nights
or more.

- You receive the full daily M&IE rate for every full day of travel.
- On the first and last day of a trip you receive 75% of the daily rate (shown
  in the last column of the table).
- If a meal is provided (by a conference, a client or a flight with a full
  meal service), deduct 20% of the daily rate for breakfast and 35% each for
  lunch and dinner.
- Day trips without an overnight stay do not qualify for a per diem; claim
  actual meal costs up to the first-and-last-day amount instead.

## 2. Rates by city

Lodging caps are per night, before taxes and fees. All amounts are in US
dollars.
""")

PER_DIEM_ROWS = [
    ["City", "Country", "Lodging cap (USD/night)", "M&IE (USD/day)", "First/last day M&IE (USD)"],
    ["Portland, OR", "United States", "220", "79", "59.25"],
    ["Austin, TX", "United States", "220", "74", "55.50"],
    ["Seattle, WA", "United States", "270", "86", "64.50"],
    ["Chicago, IL", "United States", "260", "86", "64.50"],
    ["San Francisco, CA", "United States", "325", "92", "69.00"],
    ["Boston, MA", "United States", "310", "92", "69.00"],
    ["New York, NY", "United States", "340", "92", "69.00"],
    ["Toronto", "Canada", "240", "85", "63.75"],
    ["London", "United Kingdom", "330", "110", "82.50"],
    ["Dublin", "Ireland", "280", "98", "73.50"],
    ["Lisbon", "Portugal", "210", "76", "57.00"],
    ["Singapore", "Singapore", "300", "104", "78.00"],
    ["All other US cities", "United States", "220", "68", "51.00"],
]

PER_DIEM_OUTRO = _d("""
## 3. Lodging caps and the travel policy

The Travel & Expense Policy sets a general nightly hotel cap. The caps in the
table above replace the general cap for the cities listed, whether the city
cap is higher or lower. For a city that is not listed, use the general cap in
the policy, and for the M&IE rate use the "All other US cities" row (United
States) or ask Finance for the rate (elsewhere).

## 4. Currency and exchange rates

Claim per diems abroad in US dollars. Hotel bills paid in another currency are
converted at the rate on your card statement, or at the Ledgerline daily rate
if you paid cash. Card foreign-transaction fees are reimbursed.

## 5. Conferences and long stays

- For a conference that includes meals, apply the meal deductions in section 1.
- For a stay of more than 30 consecutive nights in one city, the per diem drops
  to 75% from day 31 and Finance may arrange a serviced apartment instead of a
  hotel.

## 6. Exceptions

Exceptions (for example a city-wide event that pushes every hotel above the
cap) need the approval of the Corporate Controller before you book. Attach the
approval to the expense report. Questions to expenses@kestrelridge.example.
""")

PARENTAL_LEAVE_PDF = _d("""
# Parental Leave Policy and Administration Guide

**CONFIDENTIAL - HR internal.** People Operations. Effective 1 January 2025. Owner: Priya Raman, VP People.

## 1. Purpose

Kestrel Ridge Analytics gives every new parent paid time to care for and bond
with a child after birth, adoption or foster placement. This guide sets out
the entitlements and how HR administers them. Employees receive a summary
through their HR business partner when they announce a leave.

## 2. Eligibility

- All regular employees with at least **90 days of service** on the first day
  of leave, in every country where we employ people.
- Both parents qualify if both work for Kestrel Ridge.
- Leave must start within 12 months of the birth, adoption or placement.

## 3. Entitlements

| Type of leave | Paid weeks | Pay | Can be split |
| --- | --- | --- | --- |
| Primary caregiver | 18 weeks | 100% of base salary | Up to 2 blocks |
| Secondary caregiver | 10 weeks | 100% of base salary | Up to 3 blocks |
| Birthing parent, before the birth | Up to 2 weeks | 100% of base salary | No |
| Pregnancy loss | 2 weeks | 100% of base salary | No |
| Phased return after primary leave | 4 weeks at a 60% schedule | 100% of base salary | No |

Commissioned sales employees receive their base salary plus the average of
their monthly commission over the previous 12 months.

## 4. Government programmes

Where a state or national programme pays benefits (for example Oregon's paid
leave programme or the Irish maternity and paternity benefit), the employee
applies for it and Kestrel Ridge tops up the payment to 100% of base salary.
The top-up is paid through payroll; HR reconciles it every month.

## 5. Notice and planning

- Employees tell their manager and HRBP at least **8 weeks** before the leave
  starts, or as soon as possible for adoption and foster placements.
- The HRBP sets up the leave in PeoplePort with leave code **PL-PRI**
  (primary), **PL-SEC** (secondary) or **PL-PHR** (phased return).
- The manager agrees a coverage plan for the employee's work with the HRBP.

[pagebreak]

## 6. During the leave

- Health, dental and vision benefits continue on the same terms.
- Equity keeps vesting and 401(k) matching continues on the pay received.
- Vacation keeps accruing.
- Employees may agree up to 5 "keeping in touch" days, paid as normal
  working days; these do not shorten the leave.

## 7. Return to work

- Employees return to the same role, or a role with the same level, pay and
  location.
- An employee on leave during the annual review receives a rating of 3
  (Meeting expectations) unless they worked most of the year and ask to be
  rated normally.
- Lactation rooms are available in every office; book them in the calendar
  like meeting rooms.

## 8. HR checklist

1. Confirm eligibility and dates in writing within 5 business days.
2. Set up the leave code and the government-programme top-up in PeoplePort.
3. Send the employee the benefits continuation letter.
4. Two weeks before the return date, schedule a return meeting with the
   employee and manager.
5. Close the leave in PeoplePort on the first day back.
""")


def build_pdfs() -> None:
    from reportlab.lib.units import inch
    from reportlab.platypus import PageBreak

    story = md_to_flowables(EXPENSE_2023_PDF, {0: [2.5 * inch, 4.0 * inch]})
    build_pdf(
        "expense_policy_2023.pdf",
        "Travel & Expense Policy (version 3.1, 2023)",
        "Travel and expense policy",
        story,
        "Kestrel Ridge Analytics - Travel & Expense Policy v3.1 - effective 1 March 2023",
    )
    write_meta(
        "expense_policy_2023.pdf",
        "Travel & Expense Policy (2023 edition, v3.1)",
        ["everyone"],
        "policies/finance/travel-expense-2023",
        "Finance",
        "2023-03-01",
    )

    story = md_to_flowables(PER_DIEM_INTRO)
    story.append(_pdf_table(PER_DIEM_ROWS, [1.45 * inch, 1.15 * inch, 1.2 * inch, 1.0 * inch, 1.2 * inch]))
    story.append(PageBreak())
    story += md_to_flowables(PER_DIEM_OUTRO)
    build_pdf(
        "per_diem_rates_2025.pdf",
        "Per Diem Rates 2025",
        "Per diem schedule",
        story,
        "Kestrel Ridge Analytics - Finance - Per Diem Rates 2025",
    )
    write_meta(
        "per_diem_rates_2025.pdf",
        "Per Diem Rates 2025",
        ["everyone"],
        "policies/finance/per-diem-2025",
        "Finance",
        "2025-01-01",
    )

    story = md_to_flowables(PARENTAL_LEAVE_PDF, {0: [1.9 * inch, 1.1 * inch, 1.6 * inch, 1.4 * inch]})
    build_pdf(
        "parental_leave_policy.pdf",
        "Parental Leave Policy and Administration Guide",
        "Parental leave",
        story,
        "Kestrel Ridge Analytics - CONFIDENTIAL - HR internal",
    )
    write_meta(
        "parental_leave_policy.pdf",
        "Parental Leave Policy and Administration Guide",
        ["hr"],
        "hr/policies/parental-leave",
        "People Operations",
        "2025-01-01",
    )


# ---------------------------------------------------------------------------
# PPTX
# ---------------------------------------------------------------------------

PRODUCT_SLIDES = [
    {
        "title": "Ridgeline",
        "subtitle": "Analytics your whole company can trust\n"
        "Product overview for new employees and partners - May 2025",
    },
    {
        "title": "What Ridgeline does",
        "bullets": [
            "Connects to cloud data warehouses and 40+ SaaS sources",
            "One semantic model: every metric defined once, used everywhere",
            "Dashboards, scheduled exports and threshold alerts",
            "Governed self-service: row-level security, audit log, SSO",
            "Runs in our cloud or self-hosted as Ridgeline Edge",
        ],
        "notes": "Keep this slide short; the demo does the convincing.",
    },
    {
        "title": "Who buys Ridgeline",
        "bullets": [
            "Mid-market and enterprise companies with a central data team",
            "Strongest in retail, logistics and healthcare",
            "Buyer: Head of Data or CFO; champion: the analytics engineer",
            "Typical first deal: Growth plan, 30-50 seats, expands to Enterprise",
            "Main reason we win: trusted, consistent metrics across teams",
        ],
    },
    {
        "title": "Plans at a glance",
        "table": [
            ["", "Starter", "Growth", "Enterprise"],
            ["Seats included", "Up to 10", "Up to 50", "Unlimited"],
            ["Data retention", "90 days", "2 years", "Custom, up to 7 years"],
            ["Connectors", "5 standard", "All standard", "Standard + premium"],
            ["Single sign-on", "-", "SAML SSO", "SAML SSO + SCIM"],
            ["Uptime SLA", "-", "99.5%", "99.9%"],
            ["Support", "E-mail", "Business hours", "24/7 + named TAM"],
        ],
        "notes": "Prices are in the price list, not on this slide: they change more often.",
    },
    {
        "title": "New in Ridgeline 4.2",
        "bullets": [
            "Scheduled PDF and CSV exports by e-mail or to object storage",
            "Warehouse sync 2.0 with change-data-capture",
            "Query cache: large dashboards load about 3x faster",
            "Audit log streaming to the customer's SIEM (Enterprise)",
            "Ask Ridgeline natural-language questions (beta)",
        ],
    },
    {
        "title": "Roadmap",
        "bullets": [
            "4.3 (August 2025): custom chart plugins, Slack and Teams alert cards",
            "4.4 (November 2025): embedded analytics SDK v2",
            "5.0 (first half of 2026): new query engine and Ask Ridgeline GA",
            "Roadmap dates are plans, not commitments - never promise them to customers",
        ],
    },
    {
        "title": "Questions and resources",
        "bullets": [
            "Product questions: #ridgeline-product",
            "Sales enablement library: intranet > Sales > Ridgeline",
            "Demo workspaces: request one in ServiceDesk",
            "Product management: product@kestrelridge.example",
        ],
    },
]

ALL_HANDS_SLIDES = [
    {"title": "Q3 2025 All Hands", "subtitle": "2 October 2025\nOwen Castellanos, CEO"},
    {
        "title": "Q3 by the numbers",
        "table": [
            ["Metric", "Q3 2025", "Q2 2025", "Q3 2024"],
            ["Revenue", "$14.2M", "$13.1M", "$10.9M"],
            ["Annual recurring revenue", "$58.6M", "$54.0M", "$44.3M"],
            ["Net revenue retention", "118%", "116%", "112%"],
            ["Customer workspaces", "684", "652", "571"],
            ["Employees", "312", "298", "254"],
        ],
        "notes": "Revenue up 30% year over year. Thank the sales and CS teams.",
    },
    {
        "title": "Q3 wins",
        "bullets": [
            "Largest deal in our history: a national grocery chain, 3-year Enterprise",
            "Ridgeline 4.2 shipped on time on 20 May; 4.3 shipped in August",
            "SOC 2 Type II report renewed with zero exceptions",
            "Support met its P1 response target on 99% of tickets",
        ],
    },
    {
        "title": "What we need to fix",
        "bullets": [
            "Ask Ridgeline beta answers are too slow on large models",
            "Average enterprise sales cycle grew to 94 days",
            "Data science hiring is behind plan: 4 of 9 roles filled",
        ],
    },
    {
        "title": "Lisbon office opens January 2026",
        "bullets": [
            "Our third engineering hub, after Portland and Dublin",
            "Site lead: Joana Marques (Director of Engineering)",
            "25 roles to hire by the end of 2026, starting with platform and data",
            "Internal transfers welcome: talk to your manager and HRBP",
        ],
    },
    {
        "title": "People updates",
        "bullets": [
            "Welcome to the 27 people who joined in Q3",
            "Grace Mbeki joined as VP Customer Success",
            "Benefits open enrolment: 3-21 November",
            "Annual reviews start 13 October",
        ],
    },
    {
        "title": "Q4 priorities",
        "bullets": [
            "Ship Ridgeline 4.4 in November",
            "Finish the year above $62M ARR",
            "Start the 5.0 beta with 10 design partners",
            "Open Lisbon and hire the first 8 people there",
        ],
    },
    {
        "title": "Questions?",
        "bullets": [
            "Ask now, or post in #all-hands-questions",
            "Answers to unanswered questions will be posted by Friday",
        ],
    },
]


def build_pptx(name: str, title: str, slides: list[dict]) -> None:
    from pptx import Presentation
    from pptx.util import Inches, Pt

    prs = Presentation()
    prs.slide_width = Inches(13.333)
    prs.slide_height = Inches(7.5)
    for spec in slides:
        if "subtitle" in spec:
            slide = prs.slides.add_slide(prs.slide_layouts[0])
            slide.shapes.title.text = spec["title"]
            slide.placeholders[1].text = spec["subtitle"]
        elif "table" in spec:
            slide = prs.slides.add_slide(prs.slide_layouts[5])  # title only
            slide.shapes.title.text = spec["title"]
            rows = spec["table"]
            shape = slide.shapes.add_table(
                len(rows), len(rows[0]), Inches(0.8), Inches(1.8), Inches(11.7), Inches(0.5 * len(rows))
            )
            table = shape.table
            for r, row in enumerate(rows):
                for c, value in enumerate(row):
                    cell = table.cell(r, c)
                    cell.text = value
                    for par in cell.text_frame.paragraphs:
                        for run in par.runs:
                            run.font.size = Pt(16)
                            run.font.bold = r == 0
        else:
            slide = prs.slides.add_slide(prs.slide_layouts[1])
            slide.shapes.title.text = spec["title"]
            body = slide.placeholders[1]
            body.left, body.top = Inches(0.8), Inches(1.6)
            body.width, body.height = Inches(11.7), Inches(5.2)
            tf = body.text_frame
            for i, bullet in enumerate(spec["bullets"]):
                par = tf.paragraphs[0] if i == 0 else tf.add_paragraph()
                par.text = bullet
                par.font.size = Pt(24)
        title_shape = slide.shapes.title
        title_shape.left, title_shape.width = Inches(0.8), Inches(11.7)
        if "notes" in spec:
            slide.notes_slide.notes_text_frame.text = spec["notes"]
    set_core(prs.core_properties, title)
    path = OUT / name
    prs.save(path)
    normalize_zip(path)


# ---------------------------------------------------------------------------
# XLSX
# ---------------------------------------------------------------------------

PRICE_LICENSES = [
    ["SKU", "Product", "Description", "Unit", "Billing", "List price (USD)"],
    [
        "RL-STR-SEAT",
        "Ridgeline Starter",
        "Starter plan seat, up to 10 seats",
        "per user per month",
        "Monthly or annual",
        35,
    ],
    [
        "RL-GRW-SEAT",
        "Ridgeline Growth",
        "Growth plan seat, up to 50 seats",
        "per user per month",
        "Annual",
        65,
    ],
    [
        "RL-ENT-SEAT",
        "Ridgeline Enterprise",
        "Enterprise plan seat",
        "per user per month",
        "Annual commitment",
        95,
    ],
    [
        "RL-ENT-PLAT",
        "Ridgeline Enterprise",
        "Enterprise platform fee (SSO + SCIM, audit log, TAM)",
        "per workspace per year",
        "Annual",
        24000,
    ],
    ["RL-VIEW-100", "Viewer pack", "100 view-only users", "per pack per year", "Annual", 6000],
    ["RL-EDGE-NODE", "Ridgeline Edge", "Self-hosted Edge node licence", "per node per year", "Annual", 18000],
    [
        "RL-CONN-STD",
        "Connector pack",
        "10 additional standard connectors",
        "per pack per year",
        "Annual",
        1200,
    ],
    [
        "RL-CONN-SAP",
        "SAP connector",
        "Premium connector for SAP ERP and S/4 systems",
        "per connector per year",
        "Annual",
        4800,
    ],
    [
        "RL-CONN-MF",
        "Mainframe connector",
        "Premium connector for DB2 on z/OS",
        "per connector per year",
        "Annual",
        6500,
    ],
    [
        "RL-ASK-ADDON",
        "Ask Ridgeline",
        "Natural-language questions add-on",
        "per user per month",
        "Annual",
        12,
    ],
    [
        "RL-AUDIT-STREAM",
        "Audit streaming",
        "Stream audit events to a SIEM",
        "per workspace per year",
        "Annual",
        3000,
    ],
    [
        "RL-SANDBOX",
        "Sandbox workspace",
        "Additional non-production workspace",
        "per workspace per year",
        "Annual",
        4000,
    ],
    ["RL-STOR-1TB", "Managed storage", "Additional managed storage, 1 TB", "per TB per month", "Monthly", 40],
    [
        "RL-EMBED-1K",
        "Embedded analytics",
        "Dashboards embedded in the customer's product, 1,000 external viewers",
        "per pack per year",
        "Annual",
        9000,
    ],
    [
        "RL-EDGE-HA",
        "Ridgeline Edge HA",
        "High-availability pair of self-hosted Edge nodes",
        "per pair per year",
        "Annual",
        32000,
    ],
]

PRICE_SERVICES = [
    ["SKU", "Service", "Description", "Unit", "List price (USD)"],
    [
        "PS-ONB-STD",
        "Standard onboarding",
        "Remote setup of up to 5 sources and 10 dashboards",
        "fixed fee",
        7500,
    ],
    [
        "PS-ONB-ENT",
        "Enterprise onboarding",
        "8-week guided rollout with a solutions architect",
        "fixed fee",
        25000,
    ],
    ["PS-DAY", "Consulting day", "Solutions architect, remote or on site (travel extra)", "per day", 2200],
    [
        "PS-MIG-V1",
        "API migration assistance",
        "Help moving integrations from the v1 to the v2 REST API",
        "fixed fee",
        5000,
    ],
    ["TR-ADMIN", "Admin training", "Two-day workspace administrator course", "per attendee", 450],
    ["TR-ANALYST", "Analyst training", "One-day dashboard and semantic model course", "per attendee", 350],
    ["SUP-TAM", "Named TAM", "Named technical account manager for Growth customers", "per year", 30000],
    ["SUP-PREM-247", "Premium support", "24/7 P1 and P2 support for Growth customers", "per year", 12000],
]

PRICE_DISCOUNTS = [
    ["Condition", "Standard discount", "Approval needed above"],
    ["2-year prepaid term", "8%", "12% (Sales Director)"],
    ["3-year prepaid term", "12%", "18% (VP Sales)"],
    ["Registered non-profit or education", "20%", "30% (VP Sales)"],
    ["More than 500 Enterprise seats", "10%", "20% (CFO)"],
]

HW_LAPTOPS = [
    ["Item code", "Model", "Specification", "Eligible roles", "Refresh cycle (months)", "Unit cost (USD)"],
    [
        "LT-ENG-14",
        "KR Pro 14 (engineering build)",
        "14-inch, 12-core CPU, 32 GB RAM, 1 TB SSD",
        "Engineering, data science, IT",
        36,
        2450,
    ],
    [
        "LT-ENG-16",
        "KR Pro 16 (engineering build)",
        "16-inch, 16-core CPU, 64 GB RAM, 2 TB SSD",
        "ML and platform engineers (director approval)",
        36,
        3400,
    ],
    [
        "LT-DES-16",
        "KR Pro 16 (design build)",
        "16-inch, 12-core CPU, 36 GB RAM, 1 TB SSD, colour-calibrated display",
        "Design, video",
        36,
        2900,
    ],
    [
        "LT-STD-14",
        "KR Air 14",
        "14-inch, 8-core CPU, 16 GB RAM, 512 GB SSD",
        "All other roles (macOS)",
        48,
        1350,
    ],
    [
        "LT-WIN-14",
        "KR Win 14",
        "14-inch, 8-core CPU, 16 GB RAM, 512 GB SSD, Windows 11",
        "Finance, sales operations (Windows-only apps)",
        48,
        1280,
    ],
    ["LT-LOAN-13", "KR Air 13 (loaner)", "13-inch, 8 GB RAM, 256 GB SSD", "Temporary loaners only", 60, 900],
]

HW_PERIPHERALS = [
    ["Item code", "Item", "Notes", "Eligible", "Unit cost (USD)"],
    ["MON-27-4K", "27-inch 4K monitor", "One per employee, home or office", "Everyone", 420],
    [
        "MON-34-UW",
        "34-inch ultrawide monitor",
        "Instead of the 27-inch monitor",
        "Engineering, design, data science",
        690,
    ],
    ["DOCK-USBC", "USB-C dock", "Power, display and Ethernet", "Everyone", 210],
    ["KB-STD", "Wireless keyboard", "US, UK or Irish layout", "Everyone", 90],
    ["MS-STD", "Wireless mouse", "Ergonomic model by request", "Everyone", 45],
    ["HS-ANC", "Noise-cancelling headset", "With boom microphone", "Everyone", 180],
    ["CAM-HD", "HD webcam", "For external monitors without a camera", "Everyone", 110],
    ["BAG-15", "Laptop backpack", "Fits up to 16-inch laptops", "Everyone", 70],
]


def _sheet(ws, rows: list[list], money_cols: tuple[int, ...] = (), widths=None) -> None:
    from openpyxl.styles import Font, PatternFill

    for row in rows:
        ws.append(row)
    for cell in ws[1]:
        cell.font = Font(bold=True)
        cell.fill = PatternFill("solid", fgColor="D9E2EC")
    for col in money_cols:
        for r in range(2, len(rows) + 1):
            ws.cell(row=r, column=col).number_format = "#,##0"
    ws.freeze_panes = "A2"
    for i, w in enumerate(widths or [], start=1):
        ws.column_dimensions[chr(64 + i)].width = w


def build_xlsx() -> None:
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.title = "Licenses"
    _sheet(ws, PRICE_LICENSES, (6,), [16, 22, 50, 24, 20, 16])
    _sheet(wb.create_sheet("Services"), PRICE_SERVICES, (5,), [16, 26, 55, 14, 16])
    _sheet(wb.create_sheet("Discounts"), PRICE_DISCOUNTS, (), [36, 18, 24])
    set_core(wb.properties, "Price List 2025", "Ridgeline list prices")
    path = OUT / "price_list_2025.xlsx"
    wb.save(path)
    normalize_zip(path)
    write_meta(
        "price_list_2025.xlsx",
        "Ridgeline Price List 2025",
        ["everyone"],
        "sales/price-list-2025",
        "Sales Operations",
        "2025-01-01",
    )

    wb = Workbook()
    ws = wb.active
    ws.title = "Laptops"
    _sheet(ws, HW_LAPTOPS, (6,), [14, 30, 60, 44, 22, 16])
    _sheet(wb.create_sheet("Peripherals"), HW_PERIPHERALS, (5,), [14, 28, 40, 34, 16])
    set_core(wb.properties, "IT Hardware Catalog", "Standard hardware")
    path = OUT / "it_hardware_catalog.xlsx"
    wb.save(path)
    normalize_zip(path)
    write_meta(
        "it_hardware_catalog.xlsx",
        "IT Hardware Catalog",
        ["everyone"],
        "it/hardware-catalog",
        "IT",
        "2025-01-20",
    )


# ---------------------------------------------------------------------------
# Evaluation questions (written to data/samples_questions.jsonl)
# ---------------------------------------------------------------------------

EVERYONE, HR = ["everyone"], ["hr"]
QUESTIONS_LIST = [
    (
        "What is the general nightly hotel cap under the current travel policy?",
        "USD 220 per night before taxes and fees (the 2025 policy; the old 2023 policy said USD 180).",
        "expense_policy_2025.md",
        EVERYONE,
    ),
    (
        "What is the mileage reimbursement rate for using a personal car on business?",
        "USD 0.70 per mile (2025 policy; the 2023 policy said USD 0.655).",
        "expense_policy_2025.md",
        EVERYONE,
    ),
    (
        "From what amount is an itemised receipt required for an expense?",
        "For every expense of USD 75 or more (and for all lodging); the 2023 policy said USD 25.",
        "expense_policy_2025.md",
        EVERYONE,
    ),
    (
        "What is the daily meals and incidentals per diem for Chicago?",
        "USD 86 per day (USD 64.50 on the first and last day); lodging cap USD 260 per night.",
        "per_diem_rates_2025.pdf",
        EVERYONE,
    ),
    (
        "Which rules apply to a hotel booked in December 2024 for a stay in mid-January 2025?",
        "The transition rule: trips booked before 1 January 2025 for stays beginning by 31 January 2025 "
        "are reimbursed under the 2023 or 2025 rules, whichever is better.",
        "expense_policy_update_thread.eml",
        EVERYONE,
    ),
    (
        "What is the internal phone extension of the IT help desk?",
        "Extension 4357 (x4357, spells HELP).",
        "it_support_contacts.txt",
        EVERYONE,
    ),
    (
        "How often does the Portland garage door code change, and where is it posted?",
        "On the first Monday of every month; it is posted only as a pinned message in the #pdx-office Slack channel.",
        "office_facilities_guide.html",
        EVERYONE,
    ),
    (
        "What is the list price of the SAP connector (SKU RL-CONN-SAP)?",
        "USD 4,800 per connector per year.",
        "price_list_2025.xlsx",
        EVERYONE,
    ),
    (
        "On what date is Founders' Day in 2025?",
        "Friday 12 September 2025.",
        "holiday_calendar_2025.html",
        EVERYONE,
    ),
    (
        "In the VPN setup steps, what do I do right after signing in to KR Connect with my SSO password?",
        "Approve the push request from the KR Authenticator app and check that the number matches (current how-to; "
        "the 2024 HTML version said to type a 6-digit SMS code, which was retired in February 2025).",
        "vpn_setup.md",
        EVERYONE,
    ),
    ("What is the minimum password length?", "14 characters.", "security_password_policy.txt", EVERYONE),
    (
        "What is the first-response target for a P1 customer support ticket?",
        "30 minutes, 24/7.",
        "customer_support_playbook.docx",
        EVERYONE,
    ),
    (
        "Where and when should a new hire in Portland arrive on the first day?",
        "At 9:30 at the 9th-floor reception (Suite 900, 415 Alder Quay).",
        "onboarding_handbook.docx",
        EVERYONE,
    ),
    (
        "How long is data retained on the Ridgeline Starter plan?",
        "90 days.",
        "ridgeline_product_overview.pptx",
        EVERYONE,
    ),
    ("What was Kestrel Ridge's revenue in Q3 2025?", "USD 14.2 million.", "q3_2025_all_hands.pptx", EVERYONE),
    (
        "When will the Ridgeline v1 REST API be removed?",
        "On 30 June 2026.",
        "ridgeline_4_2_release_notes.txt",
        EVERYONE,
    ),
    (
        "When and where does the bus to the October offsite leave?",
        "From the HQ loading dock on Alder Quay at 8:00 on Wednesday 15 October 2025 (be there by 7:45).",
        "q3_offsite_planning_thread.eml",
        EVERYONE,
    ),
    (
        "What is the refresh cycle for engineering laptops?",
        "36 months.",
        "it_hardware_catalog.xlsx",
        EVERYONE,
    ),
    (
        "How long do I have to return my old laptop after receiving a replacement?",
        "14 days, using the prepaid label in the box.",
        "laptop_request_howto.md",
        EVERYONE,
    ),
    (
        "How much does it cost to replace a lost badge?",
        "USD 25, deducted from the next paycheck.",
        "faq.html",
        EVERYONE,
    ),
    (
        "What is the salary band for an L4 Senior Software Engineer in Portland?",
        "USD 158,000 to 192,000 (midpoint 175,000).",
        "salary_bands_2025.docx",
        HR,
    ),
    (
        "How many weeks of paid leave does a primary caregiver get?",
        "18 weeks at 100% of base salary.",
        "parental_leave_policy.pdf",
        HR,
    ),
    (
        "What is the merit budget for the 2025 compensation review?",
        "3.5% of base salary per department (plus a 1.0% promotion budget).",
        "comp_review_timeline_thread.eml",
        HR,
    ),
    (
        "What share of an organisation may be rated 5 (Exceptional) in calibration?",
        "No more than 15%.",
        "performance_review_process.md",
        HR,
    ),
    (
        "How long are HR case records kept?",
        "7 years after the case is closed (longer if litigation is ongoing).",
        "hr_case_handling_guidelines.txt",
        HR,
    ),
]


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    WRITTEN.clear()

    # Markdown
    write_text("expense_policy_2025.md", EXPENSE_2025_MD)
    write_meta(
        "expense_policy_2025.md",
        "Travel & Expense Policy (2025 edition, v4.0)",
        EVERYONE,
        "policies/finance/travel-expense-2025",
        "Finance",
        "2025-01-01",
    )
    write_text("remote_work_policy.md", REMOTE_WORK_MD)
    write_meta(
        "remote_work_policy.md",
        "Remote and Hybrid Work Policy",
        EVERYONE,
        "policies/people/remote-work",
        "People Operations",
        "2024-09-01",
    )
    write_text("vpn_setup.md", VPN_MD)
    write_meta("vpn_setup.md", "How to connect to the corporate VPN", EVERYONE, "it/howto/vpn", "IT", "2025-03-10")
    write_text("laptop_request_howto.md", LAPTOP_MD)
    write_meta(
        "laptop_request_howto.md",
        "How to request a new or replacement laptop",
        EVERYONE,
        "it/howto/laptop-request",
        "IT",
        "2025-01-20",
    )
    write_text("performance_review_process.md", PERF_REVIEW_MD)
    write_meta(
        "performance_review_process.md",
        "Performance Review Process (HR internal)",
        HR,
        "hr/process/performance-review",
        "People Operations",
        "2025-06-01",
    )

    # HTML
    write_text("vpn_setup.html", VPN_HTML)
    write_meta(
        "vpn_setup.html",
        "How to connect to the corporate VPN (2024)",
        EVERYONE,
        "it/howto/vpn-2024",
        "IT",
        "2024-06-01",
    )
    write_text("faq.html", FAQ_HTML)
    write_meta("faq.html", "Employee FAQ", EVERYONE, "help/faq", "People Operations", "2025-04-01")
    write_text("holiday_calendar_2025.html", HOLIDAY_HTML)
    write_meta(
        "holiday_calendar_2025.html",
        "Company Holiday Calendar 2025",
        EVERYONE,
        "people/holidays-2025",
        "People Operations",
        "2025-01-01",
    )
    write_text("office_facilities_guide.html", FACILITIES_HTML)
    write_meta(
        "office_facilities_guide.html",
        "Portland HQ Office and Facilities Guide",
        EVERYONE,
        "facilities/portland-guide",
        "Facilities",
        "2025-02-15",
    )

    # Plain text
    write_text("security_password_policy.txt", PASSWORD_TXT)
    write_meta(
        "security_password_policy.txt",
        "Information Security Standard IS-04: Passwords and Authentication",
        EVERYONE,
        "policies/security/is-04-passwords",
        "IT Security",
        "2025-02-01",
    )
    write_text("it_support_contacts.txt", SUPPORT_CONTACTS_TXT)
    write_meta("it_support_contacts.txt", "IT Support Contacts", EVERYONE, "it/support-contacts", "IT", "2025-03-01")
    write_text("ridgeline_4_2_release_notes.txt", RELEASE_NOTES_TXT)
    write_meta(
        "ridgeline_4_2_release_notes.txt",
        "Ridgeline 4.2 Release Notes",
        EVERYONE,
        "product/releases/4-2",
        "Product",
        "2025-05-20",
    )
    write_text("hr_case_handling_guidelines.txt", HR_CASE_TXT)
    write_meta(
        "hr_case_handling_guidelines.txt",
        "HR Case Handling Guidelines",
        HR,
        "hr/process/case-handling",
        "People Operations",
        "2024-11-01",
    )

    # E-mail
    build_emls()

    # DOCX
    md_to_docx(ONBOARDING_DOCX, "onboarding_handbook.docx", "New Hire Onboarding Handbook", "Onboarding")
    write_meta(
        "onboarding_handbook.docx",
        "New Hire Onboarding Handbook",
        EVERYONE,
        "people/onboarding-handbook",
        "People Operations",
        "2025-01-06",
    )
    md_to_docx(SUPPORT_PLAYBOOK_DOCX, "customer_support_playbook.docx", "Customer Support Playbook", "Support")
    write_meta(
        "customer_support_playbook.docx",
        "Customer Support Playbook",
        EVERYONE,
        "customer-success/support-playbook",
        "Customer Success",
        "2025-03-15",
    )
    md_to_docx(SALARY_BANDS_DOCX, "salary_bands_2025.docx", "Salary Bands 2025", "Compensation")
    write_meta(
        "salary_bands_2025.docx",
        "Salary Bands 2025",
        HR,
        "hr/compensation/salary-bands-2025",
        "People Operations",
        "2025-01-01",
    )
    md_to_docx(remote_work_docx_source(), "remote_work_policy.docx", "Remote and Hybrid Work Policy", "Remote work")
    write_meta(
        "remote_work_policy.docx",
        "Remote and Hybrid Work Policy (signed copy)",
        EVERYONE,
        "policies/people/remote-work-signed",
        "People Operations",
        "2024-09-01",
    )

    # PDF
    build_pdfs()

    # PPTX
    build_pptx("ridgeline_product_overview.pptx", "Ridgeline Product Overview", PRODUCT_SLIDES)
    write_meta(
        "ridgeline_product_overview.pptx",
        "Ridgeline Product Overview (May 2025)",
        EVERYONE,
        "product/ridgeline-overview",
        "Product Marketing",
        "2025-05-01",
    )
    build_pptx("q3_2025_all_hands.pptx", "Q3 2025 All Hands", ALL_HANDS_SLIDES)
    write_meta(
        "q3_2025_all_hands.pptx",
        "Q3 2025 All Hands",
        EVERYONE,
        "company/all-hands/2025-q3",
        "Executive",
        "2025-10-02",
    )

    # XLSX
    build_xlsx()

    # Questions
    names = set(WRITTEN)
    with QUESTIONS.open("w", encoding="utf-8", newline="\n") as fh:
        for question, answer, source, groups in QUESTIONS_LIST:
            assert source in names, source
            fh.write(
                json.dumps(
                    {"question": question, "answer": answer, "source": source, "groups": groups},
                    ensure_ascii=False,
                )
                + "\n"
            )

    print(f"wrote {len(WRITTEN)} documents (+ sidecars) to {OUT}")
    print(f"wrote {len(QUESTIONS_LIST)} questions to {QUESTIONS}")


if __name__ == "__main__":
    main()
