r"""Property answers: the number in free text, per-property valid ranges, valid ratio and MAE.

`parse_number(text)` returns the answer's value (the first number that is a value, see
the rules) or None when the answer gives no single value. `parse_value(text, spec)` reads
it for a property: where the answer also names another known property (a name or alias of
`PROPERTY_RANGES`, or of a property the report does not score, `_OTHER_PROPERTIES`: pKa,
IC50, melting and boiling point, density, ...; `pKa 4.2, LogP 2.1` is 2.1 for LogP, was
4.2; these label only a number attached to them, `pKa 4.2`, `pKa = 4.2`, `IC50 of 5 nM`,
`4.2 (pKa)`, a count's whole number before it, `13 heavy atoms`, and through `:`/`is` only
where the asked property is not named before them in the clause: `The LogP accounting for
the hydrogen bond donors is 2.1` is 2.1; `density functional`, `electron density` name no
property), a number that another property's mention labels is skipped (`_Labels`:
the nearest mention before it in its clause, `HOMO: -5.2 eV; LUMO: -1.1 eV` is -1.1 for the
LUMO, was -5.2; else one right after it, `-1.1 eV (LUMO)`, `-5.2 eV is the HOMO`; else a
line above holding only a label; a mention alone in brackets right after a number labels
that number, not the next: `-5.2 eV (HOMO) and -1.1 eV (LUMO)` is -1.1 for the LUMO, was
no value, unless a cue and a number follow the bracket: `MO 43 (LUMO) = -1.1 eV` is -1.1,
the index 43 an enumeration). A number is never skipped only for standing before the
asked property's name: `-5.2 eV. The HOMO energy is high, ... HOMO-LUMO gap.` is -5.2 (4a2dea4
read from the asked property's first mention on: no value, or another property's number).
An answer whose every number is another property's has no value (NoValue.OTHER_PROPERTY).
Rules, in order:

1. Text is normalised: invisible format characters (Unicode category Cf: zero-width spaces
   and joiners, U+2060, the soft hyphen, U+FEFF, direction marks) are removed (`-\u200b2.0`
   is -2.0: it read 2.0, the sign cut off by one); superscript powers of ten (`10⁻³`) become
   `10^-3`, and a superscript after another number a power (`5²` is `5^2`, not 52);
   LaTeX's `\times`, `\cdot`, `^{-3}`, `_{12}` and `$` become `×`, `·`, `^(-3)`, `_12` and a
   space, `\text{..}`, `\mathrm{..}` (and the like) their contents, `\frac{a}{b}` `a/{b}`,
   and `\le(q)`, `\ge(q)`, `\lt`, `\gt`, `\ne`, `\approx`, `\sim`, `\pm`, `\to`, `\%` their symbols;
   digit groups separated by a thin, narrow no-break or no-break space, an apostrophe or
   an underscore (`1 234`, `1'234`, `1_234`) are joined; an underscore that opens
   emphasis or precedes a sign (`_-3.5_`, `HOMO_-5.2`) is a space; a spaced en or em
   dash after a word or bracket is punctuation (`LogP — 2.1` is 2.1; it becomes `~`),
   unless the word is one a value follows (`is – 5.2` is -5.2); then Unicode NFKC
   (full-width digits, `½` as `1⁄2`, ...), every other minus-like dash (U+2212 minus,
   U+2012 figure dash, U+2013 en dash, U+2014 em dash, U+FE63, U+FF0D) becomes `-`, the
   fraction and division slashes and `÷` `/`, the times signs `✕ ✖ ⨯ ∗ ∙` `×`, and the
   Arabic decimal and thousands separators `.` and `,`.
2. A number is `[sign][digits][.digits]` or `.digits`, with optional thousands commas
   (`1,234,567.5`: groups of exactly three digits after a first group that does not start
   with 0; `0,125` is a decimal comma, rule 4, and read 125 before) and an optional exponent: `e-3`,
   `E+03`, Fortran's `D+02` (attached to the digits; a unit may follow, `1.2e2g/mol`, and
   a sentence's final period, `is 1.5e3.` is 1500), `× 10^-3`, `x10**3`, `X 10^3`,
   `* 10^(-3)`, `·10⁻³`, and `× 10-3` (a superscript lost in copying: it read 1.5 from
   `1.5 × 10−3`); a bare `10^3` is 1000. A sign
   directly before the digits, or separated by one space from them when the sign itself
   follows a space, `(`, `:`, `=` or the start (`is - 5.2 eV`), belongs to the number. Any
   other sign right before the number is not dropped (that read a negative answer as
   positive) but makes it invalid, rule 4.
3. Candidates that are not values are skipped and the scan goes on: digits inside a word
   or formula (`C6H12O6`, `XLogP3`, `H2O`: preceded by a letter), the power of a unit or
   word (a whole number right after `^`, `^(`, `**` glued to a letter or digit: `Å^2`,
   `nm**2`, `cm^-1`, LaTeX's `\AA^{2}`; `TPSA (Å^2): 20.2` read 2), a Pople basis set
   (`B3LYP/6-31G*`, `6-311+G(d,p)`, `3-21G`: `The HOMO (B3LYP/6-31G*) is -5.2 eV` had no
   value, "a fraction"; other method names glue their digits to letters, `M06-2X/def2-TZVP`,
   `ωB97X-D`, and are skipped as words), IUPAC locants (`2-`,
   `2,3-`, `1H-`, `4'-` before a letter or bracket, as in `2-methylpropan-1-ol`) and
   ordinals (`1st`, `2nd`); and whole numbers (no sign, point or exponent) that are a
   name's (`HOMO-1`, `LUMO+1`, `CID-702`: glued to a word by a sign), that begin a word
   (`3D`, `2D`, `1H`, `13C`: a letter right after the digits that starts no unit the
   parser knows, while `5eV`, `180g/mol` and `300K` are a number and its unit; so a
   whole number glued to a unit it does not know, `5pts`, is skipped too: written
   `5 pts` or `5.0pts`, it is read), that mark a list item (`1. ` or `1) ` at a line's
   start, after indentation or `>`, with more text on the line: `5.` alone is an answer)
   where it is one: after `#`s (`### 1. Result`), in a list (another line starts so
   numbered one less or more, `1.` and `2.`, or `1.` again, markdown's numbering), or,
   alone, where the first value after it on its line follows it directly (`1) -5.2 eV`,
   `1. 2.5`) or follows `:`, `=`, `≈`, `~` or one of the words is, are, was, were, be,
   equals, of, at, about, around, approximately, roughly, near, circa, ca. (`1. The HOMO
   is -5.2 eV`, `2. LogP: 1.5`); else it is the value (`350. The molecule has 3 rings.`
   is 350, `3. It has a hydroxyl group.` 3, `The LogP is\n2. This reflects ...` 2: such a
   start was read as a marker, 3, None and None); that are a bracketed citation (`[1]`,
   `[2, 3]`, `[1-3]`); or that number an enumeration: after one of the words step,
   stage, part, case, example, option, method, approach, scheme, table, figure, fig.,
   equation, eq., section, entry, item, reference, ref., the word capitalised or at a
   line's start, and the number followed by `:`, `.`, `)` or the line's end with more
   text after it (`Step 1: compute. HOMO = -5.2 eV`, `Table 2.`, `Figure 3)`; `LogP: 2.1`
   and `is 1: 2` are no such step, and `For example 350`, `in this case 350`, `The
   reference 350`, `Item 350`, `Table 2 gives 350` are values). Each was read as the
   answer (`From the 3D conformer, the HOMO is -5.2 eV` was 3). A number the answer
   rejects, right after `not`, `isn't`, `cannot be`, `rather than` or `instead of`, is
   skipped with the rest of its range or choice (`The LogP is not 3 but 2.1`, `Rather
   than 3.0, the LogP is 2.1` and `not 3-4; 2.1` are 2.1: each read 3); an answer whose
   every number is so rejected has no value (NoValue.DENIED, `The LogP is not 3.`).
4. The first remaining number decides. The answer is invalid (None) when that number is
   malformed (`1.2.3`, an exponent that is none, `1.2e3.5`, `1e5e5`, `10^3.5`, `10^3^2`, or set
   apart by a space, `1.2 E+3`, `1.2 e-3`; a power of
   another base than 10, `5^2`, `2**10`, or a comma not followed by exactly three digits: `12,5`, `1,2,3`,
   which could be a decimal comma or a list, and likewise `1'00`, `1_0`; a fraction or
   ratio `1/2`, `4.5/5`, `½`, `\frac{1}{2}`, `3:1`, or its denominator, `\frac{\pi}{2}`; one to
   three digits, a plain space and three digits, `1 234.5`, which could be a thousands
   group or two numbers, or whole digits, a plain space and digits or a point, `1 80.16`,
   `-5 .2`, `2 1` (a decoder's token joins: they read 1, -5 and 2); a product other than a power of ten, `1.5 × 10`, `2 x 3`, which
   is not evaluated), is one end of a range (`3-4`, `3 to 4`, `3 eV - 4 eV`, `3 ~ 4`,
   `between 3 and 4`, `2 through 3`, `2 .. 3`: a range is not one predicted value; the
   exponent of a known unit, `180 g·mol⁻¹`, `5 kJ mol-1`, is not one) or of a choice
   (`2 or 3`, `either 2 or 3`, `2 (or 3)`, `2 vs 3`, also one value in two units, `-5.2
   eV or -0.19 Ha`; `2 or so` is one value, rule 5, and so is `2 or 3D models`: the other
   number of a choice is none where it begins a word, rule 3), has a sign before it that is not its own (a
   sign after a sign, `--2.5`; one glued to a word or point, `HOMO-5.2`, `LogP−2.3`,
   `It is−2`, `HOMO-1`; one set apart by other or more whitespace than rule 2's one space,
   `-\t5.2`, `-\n5.2`, `-  5.2`, or after other punctuation, `,- 5`; a `±` or `∓` of its
   own, `± 5`, which is no one value; the words `minus 2.5`,
   `negative 2.5`: a minus or a dash, each was read as the positive number), is a bound
   (`< 5`, `>= 5`, `≤ 5`, `≲ 5`, `≪ 5`, `≠ 5`, `less than 5`, `greater than or equal to 5`,
   `at least 5`, `up to 5`, `above 5`, `over 5`, `in excess of 5`, `a maximum of 5`, and
   after the number, its unit or its uncertainty: `5 or more`, `5 or less`, `5 or higher`,
   `5 and above`, `5 and up`, `5 at most`, `5 at least`, `5+`, `5 max`, `5 (max)`, `5
   minimum`, `5 eV or more`, `5 < x`; such words only where they end their clause: at
   the end of the text or line, or before punctuation `, . ; : ! ? ) ] }`, a quote, a
   markdown `*` or `_`, `<` or a spaced dash (`5 or more.`, `(5 or more)`, `5 at least,`,
   `**5 or more**`), so `180 g/mol or more precisely 180.2`, `2 or less polar`, `-5.2 eV
   and lower-lying orbitals`, `350 at most atoms` and `5.2 (max. abs. error 0.1)` are
   values; `min` alone is minutes, no bound), or is
   not finite (`1e999`). A reference answer so written has no value (`task_kinds`);
   `why_no_value(text)` says which of these it found (`no_value_finding(text, spec)` as
   `parse_value` reads it for a property), with the text cut at word boundaries
   (`"a decimal comma or a list ('1,7')"`, `"a range ('1.5-2.0')"`, `"a bound ('less than
   5')"`, `"no number"`); `no_value_finding(text)` gives it with its code (`NoValue`), and
   `NO_VALUE_STATED` holds the codes that mean no value is stated at all (no number).
5. Words around the number do not matter (`The value is about 180 g/mol.`, `≈ 5`,
   `~5`, `-0.5 eV`, `3.2 ± 0.1` is 3.2, `45%` is 45; a unit after the uncertainty,
   `-0.25 ± 0.01 Hartree`, `-0.25 (+/- 0.01) Hartree`, is the value's). Number words (`twelve`), `N/A`,
   `nan`, `inf` and text without digits are invalid.
6. Units (`parse_value`, for a property): a property whose unit is an energy (eV,
   kcal/mol), a molar mass (g/mol) or an area (Å²) reads a unit stated right after the
   number, also past markdown, code, LaTeX `~` and a bracket that close around the number
   (`**-0.19** Hartree`, `` `-0.19` Ha ``, `(-0.19 ± 0.01) Hartree`, `$-0.19~\text{Ha}$`) or
   in the next table cell (`| -0.19 | Ha |`), after `in` where the unit ends its clause
   (`-0.19 in Hartree.`; each was read in the property's unit), or in brackets, alone or
   with words (`-0.19 (Hartree)`, `-0.19 (in Hartree)`, `(Hartree units)`, `(in units of
   Hartree)`, `(in atomic units)`), or before the number in a header
   (`HOMO (Hartree): -0.19`, `MW [kDa] = 0.18`, `TPSA (nm²) 0.202`, `Molecular weight in
   kDa: 0.18`, `The HOMO (in eV) is -5.2`; each was read in the property's own unit), also
   with emphasis, a table's `|`, `~`, `≈`, a comma, `is`, `was`, `of` or an approximation
   word between (`**HOMO (Hartree):** ~-0.19`, `| HOMO (Hartree) | -0.19 |`, `The HOMO, in
   Hartree, is -0.19`, `MW (kDa): approximately 0.18`; each was read in the property's
   unit), as quantity / unit (`HOMO / Hartree: -0.19`, `E/eV = -5.2`; `g/mol: 180` is a
   unit, no header) or at its sentence's start (`In Hartree, the HOMO is -0.19.`), and
   converts it: `-0.25 Hartree`
   (`Ha`, `a.u.`) is -6.80 eV, `-100 meV` is -0.1 eV (`MeV` is 10^6 eV; `MEV`, `mev`,
   of unclear case, are invalid), `-0.38 Ry` (`Rydberg`, Quantum ESPRESSO's unit; `mRy`)
   -5.17 eV, `-25 kJ/mol` is -5.98 kcal/mol, `-5 cal/mol`
   -0.005 kcal/mol (a bare `kJ`, `kcal` or `cal` is per mole; `-8.3e-19 J/molecule` is
   -5.18 eV, and a bare `J` or `joules` is invalid, per molecule or per mole not said: it was
   per mole, -8.6e-24 eV), `0.18 kDa` and
   `0.18 kg/mol` are 180 g/mol (`g/mol`, `g mol-1`, `g.mol-1`, `gmol-1` alike; `lb/mol`
   453.59 g/mol), `0.2 nm^2` is 20 Å², `2020 pm^2` 0.202 Å², `72.1 bohr²` 20.2 Å² (a
   square written `²`, `^2`, `**2`, `^{2}`, `squared`, `square`, `sq.`), `-20 mHa` (`mEh`,
   `mHartree`, `millihartree`) -0.544 eV; per-molecule
   and molar energies convert alike. A unit of another kind makes the answer invalid:
   another of these (`180 g/mol` for HOMO), a mass (`180 mg`, `lb`, `oz` for a molar mass), a
   temperature (`300 K`, `25 °C`), a percentage (`45%`), a voltage (`-5.2 V`, `mV`: not
   eV), a length (`20.2 Å` without the square, `300 nm`, `mm`, `bohr`), another power of
   a length (`20.2 Å³`, `A^3`, `nm³`: volumes; `cm^-1`), an area in a macroscopic unit
   (`m²`, `cm^2`, `mm²`: not converted), a dipole moment (`Debye`, a spaced `D`), a
   frequency (`Hz`, `THz`), a pressure (`atm`, `bar`, `mmHg`, `Torr`, `psi`, `kPa`), a
   concentration or amount (`mM`, a spaced `M`, `mol`,
   `mmol`, `mol/L`), `ppm`, a volume (`mL`, `liters`), a time (`seconds`), a compound
   unit (`kcal/mol/Å`, `eV·Å`, `mol/g`: a second unit joined by `/`, `·` or `per`), two
   units that differ (`HOMO (Hartree): -0.19 eV`), or a stem of these
   units after an SI prefix not listed above (`keV`, `kHa`, `µEh`, `MDa`, `GJ`, `km^2`,
   `microhartree`: not converted; each was read as the bare number in the property's unit,
   `-20 mHa` as -20 eV). No unit, a word that is not a known unit or such a prefixed stem
   (`units`, `approximately`, `for this compound`, `per atom`), a bracket or `in` that
   holds no unit (`(in water)`, `(MW)`) or one letter, the quantity's symbol (`The molar
   mass (M) is 180.16 g/mol`: was read as the unit M, mol/L, and invalid), and properties without such a unit (LogP,
   complexity, SCF energy, the data's own properties) take the number as stated. A number
   right after `pH` is a pH, a unit of another kind. For these properties and LogP, LogD,
   Log Solubility and Complexity (`PropertySpec.refused_kinds`) a number stated as a
   condition, a pH, a temperature or a pressure, is skipped like a list marker and the next
   number read (`The LogP at 25 °C is 2.1.`, `At pH 7.4, the LogD is 1.2.` and `At 1 atm,
   the LogP is 2.1.` are 2.1, 1.2 and 2.1, `At pH 7, the HOMO is -5.2 eV` and `At 760
   mmHg the HOMO is -5.2 eV` -5.2; each read 25, 7.4, 1, 7 and 760 before 4a2dea4, and
   the first four were invalid after it; a pressure was no unit until the thirteenth
   review), also with a bound or range (`Under 1 bar, LogP 2.1`, `At 20-25 °C, ...`: was
   no value, "a bound"); with no number after it the answer is invalid (`The LogP was
   measured at 25 °C.`). LogP, LogD, Log Solubility and Complexity have no unit: a number
   stated with any unit is not their value and the answer is invalid (`1.5 eV`, `45%`,
   `5.0nM`, `-5.2 D` for LogP, `180 g/mol` for Log Solubility, `350 Da` for Complexity:
   each was read as stated), except a log solubility's value <= 0 in mol/L or M (`-3.4
   mol/L`, `-2.31 M`, `-3.4 mols per litre`: a concentration is never negative, so the
   unit is the one under the log; invalid in 4a2dea4). A property whose unit is not known
   (a question file's `Boiling Point`, `property:<name>`, SCF Energy) takes a number in the
   kind of unit its name implies (`_implied_kind`, from the name's first word or the whole
   name, and said in its note: boiling, melting, flash point, `bp`, `mp`, `Tg`: a
   temperature; `homo`, `gap`, `energy`: an energy; `mw`, molecular weight: a molar mass;
   `logP`, `log...`, pKa, pIC50: no unit, where `a.u.` and arbitrary units are no unit;
   `temperature_sensitive_yield`, `tm_score`, `logistic_score` imply none) as stated, not
   converted, except a temperature where the name states its scale (`bp_celsius`,
   `Melting Point (°C)`: `423.15 K` is 150, was 423.15); one in another kind
   makes the answer invalid (`1.5 eV` for a boiling point, `-0.25 K` for `property:homo`;
   each was read as stated), and conditions of another kind are skipped as above
   (`At 760 mmHg, the boiling point is 100 °C` is 100, was 760). A name that implies no
   kind takes every number as stated, as before. `parse_number` alone converts nothing.

`PROPERTY_RANGES` holds each known property's unit and inclusive valid range; a parsed
value outside it counts as invalid. Names match case-, space- and punctuation-
insensitively, with aliases (`MW`, `TPSA`, `XLogP`, `HOMO-LUMO gap`, ...). A task
`property:<name>` (deepmolm_plugin.data.prompts: deepmolm-prepare's name for a CSV or SDF
label column) is the data's own property `<name>`, whatever its name: no unit and no
range, its numbers taken as stated (unless stated in a unit of another kind than its name
implies, rule 6) (QM9's `homo` column is in Hartree; as the known HOMO
in eV, the exact answer "-0.25 Hartree" was converted to -6.80 eV and scored 6.55 off);
its spec's `note` (metrics.json) names the known property it is named like. The known
properties are the task names without the prefix (3D-MoIT's `HOMO`, `Molecular Weight`,
..., or a question file's own `FreeSolv`). A property not listed (any other property in
the data) has no range either: every finite number is valid.

`property_metrics(preds, refs, name)`: n, n_valid, valid_ratio (x100), MAE and RMSE over
the valid predictions (None when none is valid), plus the property's unit and range. A
prediction whose error with the reference is not a finite float (1e308 against -1e308) is
invalid, so MAE and RMSE are always finite numbers (computed without overflow).
"""

from __future__ import annotations

import bisect
import enum
import math
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Dict, Optional, Sequence, Tuple, Union

from ..names import name_key
from .text import without_format_characters

# --------------------------------------------------------------------------- parsing


_SUPERSCRIPTS = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻", "0123456789+-")
_SUPERSCRIPT_POWER = re.compile(r"10\s*([⁺⁻]?[⁰¹²³⁴⁵⁶⁷⁸⁹]+)")
# Thin, narrow no-break and no-break spaces, apostrophes (Swiss `1'000`, `1’000`) and
# underscores (`1_000`) only ever group digits: joined before three digits (they read 1).
_DIGIT_GROUPS = re.compile(r"(?<=\d)[\u2009\u202f\u00a0'’_](?=\d{3}(?!\d))")
# A superscript right after a number other than 10 (`5²`, a footnote mark `5.2¹`): NFKC
# made it a digit of the number (52, 5.21). Written as a power, which rule 4 refuses.
_SUPERSCRIPT_AFTER_DIGIT = re.compile(r"(?<=[0-9])([⁺⁻]?[⁰¹²³⁴⁵⁶⁷⁸⁹]+)")
# LaTeX as models write it: `$1.5 \times 10^{-3}$` was read as 1.5 (the product operator
# and the braced exponent were not seen), `$<$ 5` and `\leq 5` as 5 (the bound was not
# seen), `\frac{1}{2}` as 1, `3.5 \text{ to } 4.0` as 3.5 and `C_6H_{12}O_6` as 12. In order:
# operators, exponents and subscripts, text wrappers to their contents, a fraction to
# `a/{b}`, named symbols.
_LATEX_SYMBOLS = {"le": "≤", "leq": "≤", "leqslant": "≤", "ge": "≥", "geq": "≥", "geqslant": "≥", "lt": "<",
                  "gt": ">", "ll": "≪", "gg": "≫", "lesssim": "≲", "gtrsim": "≳", "ne": "≠", "neq": "≠",
                  "approx": "≈", "sim": "~", "pm": "±", "to": " to ", "%": "%", "AA": "Å"}
_LATEX = [(re.compile(r"\\(?:times|cdot|ast)(?![A-Za-z])"), "×"), (re.compile(r"\^\{\s*([+-]?[0-9]+)\s*\}"), r"^(\1)"),
          (re.compile(r"_\{([^{}]*)\}"), r"_\1"),
          (re.compile(r"\\(?:text(?:rm|it|bf|normal)?|math(?:rm|it|bf|sf|tt)|mbox|operatorname)\s*\{([^{}]*)\}"), r"\1"),
          (re.compile(r"\\[dtc]?frac\s*\{([^{}]*)\}\s*\{"), r"\1/{"),
          (re.compile(r"\\(" + "|".join(sorted(_LATEX_SYMBOLS, key=len, reverse=True)) + r")(?![A-Za-z])"),
           lambda m: _LATEX_SYMBOLS[m.group(1)]),
          (re.compile(r"\\[,;:! ]|\$"), " ")]
# Markdown emphasis by underscores, which are word characters to the number pattern: `_-3.5_`
# and `HOMO_-5.2` read 3.5 and 5.2 (the sign was "inside a word"). An underscore not after a
# letter or digit, or before a sign, becomes a space; `C_6` (a LaTeX subscript) stays. Each
# run is tried from its first underscore only (linear in a line of underscores).
_UNDERSCORE = re.compile(r"(?<!\w)_+(?=[+-]?\.?\d)|(?<!_)_+(?=[+-]\.?\d)")
# A spaced en or em dash after a word or bracket is punctuation, not a minus: `LogP — 2.1`
# read -2.1. It becomes `~`, which rule 5 ignores before a number and rule 4 reads as a
# range after one (`3 eV – 4 eV`). A dash attached to the digits (`–3.5`) stays a minus, and
# so does one after a word that a value follows (`is – 5.2`), as a spaced hyphen does.
_PUNCTUATION_DASH = re.compile(r"((?<![^\W\d_])[^\W\d_]+|[)\]])(\s+)[\u2013\u2014](?=\s)")  # from a word's start: linear
_BEFORE_A_VALUE = frozenset({"is", "are", "was", "were", "be", "equals", "of", "at", "about", "around",
                             "approximately", "roughly"})
# Characters typed or copied as a minus sign (hyphens and the modifier minus too: "‐1.7"
# read 1.7, the sign lost). NFKC runs first, so U+2011 arrives as U+2010.
_MINUS = str.maketrans({c: "-" for c in "\u2212\u2012\u2013\u2014\ufe63\uff0d\u2010\u2011\u02d7\u2796"})
# Other characters written for what the parser reads: NFKC writes `½` as `1⁄2` (a fraction
# slash: it read 1, `3½` 31); times signs (`1.2 ✕ 10^3` read 1.2); Arabic decimal and
# thousands separators (`٣٫٥` read 3).
_LOOKALIKES = str.maketrans({"\u2044": "/", "\u2215": "/", "\u00f7": "/", "\u2715": "×", "\u2716": "×",
                             "\u2a2f": "×", "\u2217": "×", "\u2219": "×", "\u066b": ".", "\u066c": ","})

_NUMBER = re.compile(r"""
    (?<![\w.])                                   # not inside a word, formula or number
    (?: (?P<sign>[+-]) (?P<gap>[ ]?) )?
    (?P<mant> [1-9]\d{0,2}(?:,\d{3})+(?!\d)(?:\.\d+)?  # thousands-grouped ("0,125" is a decimal comma)
            | \d+\.(?=[eEdD][+-]?\d)                # "1.E+05", "5.e3" (Fortran / C style): was read as 1, 5
            | \d+(?:\.\d+)?
            | \.\d+ )
    (?P<exp>  [eEdD][+-]?\d+(?!\.\d)             # Fortran's D too (1.23D+02); a unit may follow
                                                 # (`1.2e2g/mol`), or a sentence's period (`is 1.5e3.`)
            | \s*[xX×*·⋅]\s*10\s*(?: (?:\^|\*\*)\s*(?:[+-]?\d+|\(\s*[+-]?\d+\s*\))
                                  | [+-]\d+(?![\d.]) ) )?   # "× 10-3": a superscript lost in copying
    """, re.VERBOSE)
# The power in a `× 10^n` exponent; `[ )]` here found none in "× 10^(3\t)", an AttributeError
_POWER_OF_TEN = re.compile(r"([+-]?[0-9]+)[\s)]*$")
_BARE_POWER = re.compile(r"\s*(?:\^|\*\*)\s*(?:([+-]?\d+)|\(\s*([+-]?\d+)\s*\))")
_SIGN_CONTEXT = re.compile(r"(?:^|[\s(:=])$")
# Matched at a position in the text (pattern.match(text, pos)), not on a copy of its rest:
# a copy per skipped locant or ordinal was quadratic in a long answer.
_LOCANT = re.compile(r"'*(?:,\d+'*)*(?:[A-Z]\*?[,)\]]|[A-Z]?-[^\W\d_(\[]|[A-Z]?-[(\[])")
_ORDINAL = re.compile(r"(?:st|nd|rd|th)\b")
# A list marker at a line's start, after indentation, markdown heading marks or quote
# marks: `1. The HOMO is -5.2 eV`, `1) -5.2 eV`, `### 1. Result` (each read 1). Only with
# more text after it on the line: `5.` alone is an answer. Such a start is a list marker
# only where it is one (`_markers`, `_lone_marker`): after `#`s, or in a list (another line starts
# `n-1.` or `n+1.`, or `1.` again); alone, where the same line goes on to the value. Else
# it is the answer's value: `350. The molecule has 3 rings.` read 3.
_LIST_MARKER = re.compile(r"^(?P<lead>[ \t#>]*)(\d{1,3})[.)](?=[ \t]+\S)", re.MULTILINE)
# What a value follows on a lone marker's line (`1. The HOMO is -5.2 eV`, `1. LogP: 2.1`):
# searched in the few characters before that line's first number.
_VALUE_CUE = re.compile(r"(?:[:=≈~]|(?<![^\W\d_])(?:is|are|was|were|be|equals|of|at|about|around|approximately"
                        r"|roughly|near|circa|ca\.))[^\S\n]*\Z", re.IGNORECASE)
_VALUE_CUE_REACH = 16  # characters
# A bracketed citation: `[1] LogP = 2.1` read 1; `[2, 3]`, `[1-3]`
_CITATION = re.compile(r"\[\d{1,3}(?:[ \t]*[,-][ \t]*\d{1,3})*\]")
# A Pople basis set names the level of theory, no number: `B3LYP/6-31G*`, `6-311+G(d,p)`,
# `3-21G`, `6-311++G(2df,2pd)` (was: `The HOMO (B3LYP/6-31G*) is -5.2 eV` had no value, its
# `6` "a fraction" after the `/`, and `6-31G*` alone "a range"). Every number in it is
# skipped (`_markers`); other names glue their digits to letters (`M06-2X`, `def2-TZVP`,
# `ωB97X-D`, `STO-3G`) and are skipped as words already.
_BASIS_SET = re.compile(r"(?<![\w.])\d{1,2}-\d{2,3}(?P<plus>\+{0,2})(?P<g>[Gg])"
                        r"(?P<polarisation>\*{1,2}|\([^()\s]{1,16}\))?(?![^\W_])")
# A whole number right after one of these words numbers the step, not the value: `Step 1:
# compute. HOMO = -5.2 eV` read 1. Searched in the few characters before the number. Only
# an enumeration: the word capitalised or at a line's start (`Step 1:`, `Table 2 shows
# 3.1`, `In Table 2, the LogP is 3.1`), and more text after the number (`Item 350` alone,
# `For example 350` and `in this case 350` are 350).
_ENUMERATION_BEFORE = re.compile(r"\b(?:step|stage|part|case|example|option|method|approach|scheme|table|figure|fig\."
                                 r"|equation|eq\.|section|entry|item|reference|ref\.)[ \t]?$", re.IGNORECASE)
# An orbital's or state's index, in any case (`MO 42 (HOMO) = -5.2 eV`, `Orbital 1`, `state 2`):
# an enumeration too (was: read as the value, 42, or took the bracket's label)
_INDEX_BEFORE = re.compile(r"(?<![^\W\d_])(?:mo|orbital|state)[ \t]?\Z", re.IGNORECASE)
_ENUMERATION_AFTER = re.compile(r"[\s.]*[^\s.]")  # more text: `Item 350` / `Item 350.` alone is 350
_AFTER_REACH = 64  # characters in which that text is looked for
_LINE_START_BEFORE = re.compile(r"(?:^|(?<=\n))[ \t#>*_-]*\Z")  # searched in a few characters
_ENUMERATION_REACH = 12  # characters: the longest word above and its space
_LETTER = re.compile(r"[^\W\d_]")
# The power of a unit (`_exponent`): searched in the few characters before a number
_EXPONENT_BEFORE = re.compile(r"[^\W_](?:[^\S\n]*\^[^\S\n]*|\*\*)(?:\([^\S\n]*)?\Z")
_EXPONENT_REACH = 12  # characters
_UNIT_REACH = 64  # characters after a number in which a unit is looked for (a window: not the whole rest)
# "1.2.3", "12,5", "1'00" (a group not of three digits), a fraction or ratio ("1/2", "3:1",
# `\frac{1}{\pi}` as "1/{\pi}"), an exponent that is none ("1.2e3.5", "1e5e5": read as 1.2
# and 1) or one set apart by a space ("1.2 E+3" read 1.2, while "1.2 E-3" was a range), a
# doubled point ("2..5", read 2) and an exponent without digits ("2.5e", "2.5e-": read 2.5;
# "2.5eV" is a unit). No two `\s*` meet around an optional token here or below: on a long
# run of spaces they tried every split of it (`5/` and 20000 spaces took 8.7 s).
_MALFORMED = re.compile(r"^(?:\.\d|\.\.+\s*\d|,\d|['’_]\d|\s*/\s*(?:[{(]\s*)?(?:\.?\d|\\)|:\d|[dD][+-]?\d"
                        r"|\s*[eE]\s*(?:[+-]\s*)?\d|[eE][+-]?(?![^\W\d_]))")
_SIGN_BEFORE = re.compile(r"[+\-±∓]$")  # "--2.5": a sign after a sign (read -2.5); "±-5"
_LABEL_BEFORE = re.compile(r"[^\W\d_][+-]$")  # a whole number glued to a word by a sign: HOMO-1, LUMO+1
_SIGN_WORD = re.compile(r"\b(?:minus|negative)\s*$", re.IGNORECASE)  # "minus 2.5" read 2.5
_DENOMINATOR = re.compile(r"/\s*(?:[{(]\s*)?$")  # `\frac{\pi}{2}` ("\pi/{2}") read 2
_POWER = re.compile(r"^\s*(?:\^|\*\*)\s*(?:[(+-]\s*)?\d")  # "5^2", "2**10": a power of another base than 10
_PRODUCT = re.compile(r"^\s*[xX×*·⋅]\s*[+-]?\.?\d")  # "1.5 × 10", "2 x 3": a product, not a power of ten
# "1 234.5": a group after a plain space is a thousands group or a second number (it read 1)
_SPACE_GROUP = re.compile(r"^ \d{3}(?!\d)")
# Digits or a point after whole digits and one plain space, `1 80.16`, `-5 .2`, `2 1.` (a
# decoder's token joins): no single value either (was: read 1, -5 and 2, valid); digits that
# begin a word (`2 3D models`) are not
_SPLIT_DIGITS = re.compile(r"^ (?:\d+(?:\.\d+)?|\.\d+)(?!\w|\.\d)")
_UNIT = r"(?:[^\W\d_][^\s\d]*\s*)?"  # optional unit word between a range's ends
# One end of a range, or one of a choice: `3-4`, `3 to 4`, `2 or 3`, `2 vs. 3`, `2 through
# 3`, `2 .. 3`, `2 (or 3)` (`or`, `vs`, `through` and `..` read 2: only `-`, `~` and `to`
# were seen, and `2.1 or -2.1` was refused only because `or` passed for a unit word)
_RANGE_AFTER = re.compile(r"^\s*" + _UNIT + r"(?:-|~|to\b|(?P<choice>\.{2,}|(?:\(\s*)?(?:to|or|vs|versus|through|thru)\b\.?))"
                          r"\s*[+-]?(?P<other>\.?\d+(?:\.\d+)?)", re.IGNORECASE)  # `-5.2 eV (-0.19 Ha)` is one value
_RANGE_BEFORE = re.compile(r"\bbetween\s*$", re.IGNORECASE)
# A bound written after the number (and its unit or uncertainty), as `_BOUND_BEFORE` before
# it: `5 or more`, `5 and above`, `5 and up`, `5 at most`, `5 (at least)`, `5+`, `5 max`,
# `5 (max)`, `5 minimum`, `5 < x`; each read 5. `or more` and the like are a bound wherever
# they stand (`5 or more rotatable bonds`, `140 or more indicates ...`), unless the word
# after them makes them none (`_NOT_A_BOUND`: `180 g/mol or more precisely 180.2`, `2 or
# less polar.`, `and lower-lying orbitals`, `and above all`); `max` / `minimum` end their
# clause (`_CLAUSE_END`), and a `max` in brackets is all they hold (`5.2 (max. abs. error
# 0.1)` is no bound); `min` alone is minutes, no bound.
_CLAUSE_END = r"(?=[^\S\n]*(?:$|\n|[.,;:!?)\]}*_\"'”’<~])|[^\S\n]+-(?:\s|$))"
# An adjective after `or more` / `or less` compares (`2 or less polar`, `... polar than water`)
# only where its clause ends or `than` follows; before a noun the words count it (`2 or more
# polar groups` read 2).
_NOT_A_BOUND = (r"(?!-[^\W\d_]|[^\S\n]+(?:precisely|exactly|accurately|specifically|correctly|likely|probably"
                r"|all|it|that|this)\b|[^\S\n]+(?:polar|soluble|lipophilic|hydrophilic|stable|reactive)\b"
                r"(?:[^\S\n]+than\b|" + _CLAUSE_END + r"))")
_BOUND_AFTER = re.compile(r"""^(?:
    \+(?![\d(/-]|\.\d)                           # `5+`, not `5+/-0.1` (an uncertainty) or `5+3`
  | \s*(?:\(\s*)?(?: (?: (?:or|and)\s+(?:more|less|greater|fewer|higher|lower|larger|smaller|bigger|above
                                       |below|over|under|beyond|up|upwards?|down|downwards?)\b
                        | at\s+(?:least|most)\b ) """ + _NOT_A_BOUND + r"""
                    | (?:max(?:imum)?|minimum)\.?\s*\) )
  | \s*(?:max(?:imum)?|minimum)\b""" + _CLAUSE_END + r"""
  | [^\S\n]*(?:[≤≥≲≳⩽⩾≦≧≪≫≮≯≰≱]|[<>]=?(?=\s|$|[+-]?\.?\d)) )""", re.IGNORECASE | re.VERBOSE)
# "3.2 ± 0.1 eV", "3.2 (+/- 0.1) eV": the uncertainty after the number is passed over, so
# that the unit after it is read (it was not: "-0.25 ± 0.01 Hartree" was -0.25 eV). Matched
# at the start of that text (a `^` pattern in `sub` is tried at every position).
_UNCERTAINTY = re.compile(r"\s*(\(\s*)?(?:±|\+/-|\+-)\s*\d+(?:\.\d+)?(?:[eE][+-]?\d+)?(?(1)\s*\))")
_BOUND_BEFORE = re.compile(r"(?:[<>≤≥≲≳⩽⩾≦≧≪≫≮≯≰≱≠]|<=|>=|=<|=>|\b(?:(?:less|more|greater|fewer|lower|higher|smaller"
                           r"|larger|bigger)\s+than(?:\s+or\s+equal\s+to)?|at\s+(?:least|most)|up\s+to|below|above"
                           r"|under|over|beyond|exceeds?|exceeding|in\s+excess\s+of|upwards\s+of|(?:maximum|minimum)\s+of))"
                           r"\s*$", re.IGNORECASE)


def normalise(text: str) -> str:
    """Rule 1 of the module docstring."""
    text = without_format_characters(text)
    text = _SUPERSCRIPT_POWER.sub(lambda m: "10^" + m.group(1).translate(_SUPERSCRIPTS), text)
    text = _SUPERSCRIPT_AFTER_DIGIT.sub(lambda m: "^" + m.group(1).translate(_SUPERSCRIPTS), text)
    for pattern, replacement in _LATEX:
        text = pattern.sub(replacement, text)
    text = _DIGIT_GROUPS.sub("", text)
    # These two are tried at every position of the text (neither starts with a fixed
    # character): only where what they change is there (most of a long answer's time).
    if "_" in text:
        text = _UNDERSCORE.sub(" ", text)
    if "\u2013" in text or "\u2014" in text:
        text = _PUNCTUATION_DASH.sub(_dash_as_punctuation, text)
    return unicodedata.normalize("NFKC", text).translate(_MINUS).translate(_LOOKALIKES)


def _dash_as_punctuation(match: "re.Match") -> str:
    word, space = match.group(1), match.group(2)
    return match.group(0) if word.lower() in _BEFORE_A_VALUE else f"{word}{space}~"


def parse_number(text) -> Optional[float]:
    """The value an answer states, or None (rules in the module docstring)."""
    parsed = _parse(text)
    return None if parsed is None else parsed.value


class NoValue(enum.Enum):
    """What a text holds instead of one value (`no_value_finding`): a code for callers, its
    value the words `why_no_value` starts with. Was: callers matched those English words
    (eval.questions refused a reference answer whose finding started with "a range", ...)."""
    NO_NUMBER = "no number"
    NOT_TEXT = "not text"
    DECIMAL_COMMA = "a decimal comma or a list"
    DIGIT_GROUPS = "digits grouped other than by three"
    SPACE_GROUP = "digits split by a space"
    FRACTION = "a fraction"
    RATIO = "a ratio"
    MALFORMED = "a malformed number"
    MALFORMED_POWER = "a malformed power of ten"
    POWER = "a power of another base than 10"
    PRODUCT = "a product other than a power of ten"
    STRAY_SIGN = "a sign before the number that is not its own"
    RANGE = "a range"
    BOUND = "a bound"
    CHOICE = "a choice"
    NOT_FINITE = "not a finite number"
    # every number it states is one it rejects: `The LogP is not 3.` (was: read as 3)
    DENIED = "only a number it says is not the value"
    # every number it states is labelled as another known property (`_Labels`): `The LogP is
    # 3.1.` for Log Solubility (was: read as 3.1, until 4a2dea4)
    OTHER_PROPERTY = "only another property's number"


#: The findings that mean a text states no value at all; every other finding is a value
#: written so that it cannot be read (`1,7`, `12 345.6`, `1.234.5`, `3-4`, `< 5`). A method
#: or basis-set name (`B3LYP/6-31G*`) is skipped as words (rule 3), so it is "no number".
NO_VALUE_STATED = frozenset({NoValue.NO_NUMBER})


@dataclass(frozen=True)
class NoValueFinding:
    """Why a text states no one value: the code, and it in words with where it was found
    (`"a range ('1.5-2.0')"`)."""
    kind: NoValue
    text: str


@dataclass(frozen=True)
class Reading:
    """What `_parse` reads: the value, the (normalised) text before its number, and the text
    after its number and uncertainty (where its unit stands: `-0.25 ± 0.01 Hartree`)."""
    value: float
    before: str
    after: str


def why_no_value(text) -> Optional[str]:
    """Why `parse_number(text)` is None, as a few words and the text where it was found
    (`"a decimal comma or a list ('1,7')"`, `"a range ('1.5-2.0')"`, `"a bound ('less than
    5')"`, `"no number"`), or None when the text states one value. For a reason that
    names what was found instead of only "no value" (rule 4)."""
    finding = no_value_finding(text)
    return None if finding is None else finding.text


def no_value_finding(text, spec: Optional["PropertySpec"] = None) -> Optional[NoValueFinding]:
    """`why_no_value` with its code (`NoValue`), or None when the text states one value; for
    `spec`, as `parse_value` reads it (was: read without the property, so a reference dropped
    for the property was said to hold "a malformed number" or something else it did not)."""
    parsed = _parse_or_reason(text, spec)
    return parsed if isinstance(parsed, NoValueFinding) else None


def number_and_text_after(text, spec: Optional["PropertySpec"] = None) -> Optional[Tuple[float, str]]:
    """(`parse_number(text)`, the normalised text after its number and uncertainty, where its
    unit stands: `' Hart'` of `-5.0 Hart`, of `-5.0 ± 0.1 Hart` and of `**-5.0** Hart`: past
    the markdown and brackets closing around the number, `unit_text_after`), or None. Where the
    parser's own match ends; was: scoring searched for the shortest prefix that read the
    same value, and `-5.0` ended after `-5` ('.0 Hart'). With `spec`, the number
    `parse_value` reads for that property (was: the first number, so a capped answer's cut
    check looked at another number than the one scored)."""
    parsed = _parse(text, spec)
    return None if parsed is None else (parsed.value, unit_text_after(parsed.before, parsed.after))


def _parse(text, spec: Optional["PropertySpec"] = None) -> Optional[Reading]:
    """What an answer states (`Reading`), or None; for `spec`, see `_parse_or_reason`."""
    parsed = _parse_or_reason(text, spec)
    return None if isinstance(parsed, NoValueFinding) else parsed


def _parse_or_reason(text, spec: Optional["PropertySpec"] = None) -> Union[Reading, NoValueFinding]:
    """`_parse`, or why the text states no one value (`no_value_finding`). With the `spec` of
    the property asked for, two more kinds of number are skipped, as list markers are, and
    the scan reads on: where the answer names another known property too, a number that
    another property's mention labels (`_Labels`: `HOMO: -5.2 eV; LUMO: -1.1 eV` is -1.1 for
    the LUMO; was -5.2, the first number), and a number stated as a condition (`_condition`:
    `The LogD at pH 7.4 is 1.2.` is 1.2; was 7.4, then invalid). A condition that no value
    follows is returned (`value_in_unit` says why it is none); numbers that are all other
    properties' are NoValue.OTHER_PROPERTY."""
    if not isinstance(text, str):
        return NoValueFinding(NoValue.NOT_TEXT, f"not text but {type(text).__name__}")
    text = normalise(text)
    markers = _markers(text)
    labels = _Labels.of_answer(text, spec) if spec is not None else None
    condition: Optional[Reading] = None  # the first number read as a condition
    others = None  # (number, mention) of the first number another property's mention labels
    conditions = 0
    skipped: Optional[NoValueFinding] = None  # the first condition's bound or range, or denied number
    resume = 0  # after a skipped condition and its uncertainty (`25 ± 1 K`: the 1 is no number of its own)
    for match in _NUMBER.finditer(text):
        start, end = match.start(), match.end()
        if start < resume or _not_a_value(text, match, markers):
            continue
        label = labels.label(start, end) if labels is not None else None
        if label is not None and not label[3]:
            others = others or (match, label)
            # `HOMO: -5.2 ± 0.1 eV`: its 0.1 too, and the other end of its range (`mp 120-122 °C`:
            # the 122 is the melting point's, now that only a number attached to `mp` is its)
            resume = end + _range_or_choice_length(text[end:end + _UNIT_REACH * 4])
            continue
        before, after = text[:start], text[end:]

        def found(kind: NoValue, at: int = start) -> NoValueFinding:
            return NoValueFinding(kind, _shown(text, at, end, kind.value))

        denied = _DENIED_BEFORE.search(text, max(0, start - _DENIED_REACH), start)
        if denied and not _HEDGE_AFTER.match(text, end):
            # `not 3 but 2.1`, `Rather than 3.0, the LogP is 2.1`: a number the answer rejects
            # (was: read, 3), skipped with the other end of its range or choice (`not 3-4`)
            skipped = skipped or found(NoValue.DENIED, denied.start())
            resume = end + _range_or_choice_length(after)
            continue
        if _stray_sign(before, match):
            return found(NoValue.STRAY_SIGN, len(before.rstrip()) - len((before.split() or [""])[-1]))
        power = _POWER.match(after) and (match.group("mant") != "10" or match.group("exp"))  # "10^3" is rule 2's
        space_group = not match.group("exp") and (
            (re.fullmatch(r"\d{1,3}", match.group("mant")) and _SPACE_GROUP.match(after))
            or (match.group("mant").isdigit() and _SPLIT_DIGITS.match(after)))
        if _MALFORMED.match(after):
            return found(_malformed_reason(after))
        if _PRODUCT.match(after) or power or space_group:
            return found(NoValue.PRODUCT if not (power or space_group) else
                         NoValue.POWER if power else NoValue.SPACE_GROUP)
        kind, at = _not_one_value(before, after, start)
        if kind in (NoValue.RANGE, NoValue.BOUND) and spec is not None and _condition(
                Reading(math.nan, before, _past_range(after)), spec):
            # `Under 1 bar, LogP 2.1`, `at 20-25 °C`: a condition's bound or range is skipped
            # as the condition is (was: the answer's finding, no value)
            skipped = skipped or found(kind, at)
            conditions += 1
            if conditions > _MAX_CONDITIONS:
                break
            resume = len(text) - len(_past_range(after))
            continue
        if kind:
            return found(kind, at)
        mant, exp = match.group("mant").replace(",", ""), (match.group("exp") or "").strip()
        try:
            if exp[:1] in ("e", "E", "d", "D"):
                value = float(f"{mant}e{exp[1:]}")
            elif exp:  # "× 10^-3", "x10**(3)"
                value = float(f"{mant}e{int(_POWER_OF_TEN.search(exp).group(1))}")
            else:
                value = float(mant)
                bare = _BARE_POWER.match(after) if mant == "10" else None
                if bare:  # "10^3"
                    value = float(f"1e{int(bare.group(1) or bare.group(2))}")
                    after = after[bare.end():]
                    kind = _not_one_value_reason(after)
                    if kind or _MALFORMED.match(after) or _POWER.match(after):
                        return found(kind or NoValue.MALFORMED_POWER)  # "10^3.5", "10^3^2": were 1000
        except OverflowError:
            return found(NoValue.NOT_FINITE)
        if match.group("sign") == "-":
            value = -value
        uncertainty = _UNCERTAINTY.match(after)
        after = after[uncertainty.end():] if uncertainty else after
        if not math.isfinite(value):
            return found(NoValue.NOT_FINITE)
        reading = Reading(value, before, after)
        if spec is not None and _condition(reading, spec):
            conditions += 1
            if conditions > _MAX_CONDITIONS:
                break  # each reads the whole text before it (`before`): many would be quadratic
            condition = condition or reading
            resume = len(text) - len(after)
            continue
        return reading
    if condition is not None:
        return condition
    if skipped is not None:
        return skipped
    if others is not None:
        number, mention = others
        return NoValueFinding(NoValue.OTHER_PROPERTY, _shown(text, min(mention[0], number.start()), number.end(),
                                                             NoValue.OTHER_PROPERTY.value))
    return NoValueFinding(NoValue.NO_NUMBER, NoValue.NO_NUMBER.value)


_SHOWN_AFTER = 16  # characters after the number that `why_no_value` shows
# A number the answer rejects: right after `not`, `isn't`, `cannot be`, `rather than`, `instead of`
# (`The LogP is not 3 but 2.1`), maybe with an approximation word between. `not more than 3`
# is a bound (`_BOUND_BEFORE`: `than` stands before the number).
_DENIED_BEFORE = re.compile(r"(?<![^\W\d_])(?:not|isn[’']t|(?:cannot|can[’']t)[^\S\n]+be|rather[^\S\n]+than"
                            r"|instead[^\S\n]+of)[^\S\n]+(?:(?:about|around|approximately|roughly|[~≈])"
                            r"[^\S\n]*)?\Z", re.IGNORECASE)
_DENIED_REACH = 40  # characters
# A hedge, not a rejection: `not exactly 2.1`, `not quite 2.1` (no `_DENIED_BEFORE`: `exactly`
# is not among its words), `not 2.1 precisely`, `not -5.2 eV exactly`: the number is read (was: no value)
_HEDGE_AFTER = re.compile(r"[^\S\n]*(?:[^\W\d_][^\s,;]{0,11}[^\S\n]+)?(?:exactly|precisely|quite)(?![^\W\d_])",
                          re.IGNORECASE)
# The other end of a range after a number (`20-25 °C`, `20 to 25`, `between 20 and 25`)
_OTHER_END = re.compile(r"[^\S\n]*(?:-|~|to\b|and\b)[^\S\n]*[+-]?\d+(?:\.\d+)?", re.IGNORECASE)


def _not_one_value(before: str, after: str, start: int) -> Tuple[Optional[NoValue], int]:
    """(NoValue.RANGE, BOUND, FRACTION or CHOICE, where its cue starts) when the words around a
    number at `start` make it no one value (rule 4: `between 3 and 4`, `< 5`, `\\frac{\\pi}{2}`,
    `3-4`, `2 or 3`), else (None, start)."""
    for pattern, kind in ((_RANGE_BEFORE, NoValue.RANGE), (_BOUND_BEFORE, NoValue.BOUND),
                          (_DENOMINATOR, NoValue.FRACTION)):
        cue = pattern.search(before)
        if cue:
            return kind, cue.start()
    return _not_one_value_reason(after), start


def _past_range(after: str) -> str:
    """The text after a number, past the other end of a range it begins, where the unit of
    both stands (`20-25 °C`)."""
    other = _OTHER_END.match(after)
    return after[other.end():] if other else after


def _range_or_choice_length(after: str) -> int:
    """How far the rest of a range or choice a number begins reaches into `after` (`3-4`, `3
    or 4`: `_RANGE_AFTER`, past an uncertainty), else 0."""
    uncertainty = _UNCERTAINTY.match(after)
    skip = uncertainty.end() if uncertainty else 0
    other = _RANGE_AFTER.match(after, skip)
    return other.end() if other else skip
# Conditions skipped before a value (`_condition`): more, and the answer is invalid for the first
_MAX_CONDITIONS = 4


def _shown(text: str, at: int, end: int, reason: str) -> str:
    """`reason` and the text from `at` to a little after the number's `end` (its line only),
    cut at word boundaries (`_word_start`, `_word_end`; was: `'/6-31G*) is -5.2 e'`)."""
    line_end = text.find("\n", end)
    stop = _word_end(text, end, min(end + _SHOWN_AFTER, len(text) if line_end < 0 else line_end))
    shown = text[_word_start(text, at):stop].strip()
    return f"{reason} ({shown!r})"


def _word_end(text: str, end: int, stop: int) -> int:
    """`stop`, moved past the rest of a word it cuts (up to `_SHOWN_AFTER` more characters:
    `... is -5.2 eV.`), else back to the last space after the number's `end`; a word
    longer than that, glued to the number, stays cut."""
    if stop <= end or stop >= len(text) or text[stop - 1].isspace() or text[stop].isspace():
        return stop
    space = _SPACE.search(text, stop, stop + _SHOWN_AFTER + 1)
    if space:
        return space.start()
    if stop + _SHOWN_AFTER >= len(text):
        return len(text)
    last = text.rfind(" ", end, stop)
    return last if last > end else stop


def _word_start(text: str, at: int) -> int:
    """`at`, moved back to the start of the word it falls in (up to `_SHOWN_AFTER`
    characters: `B3LYP/6`, not `/6`)."""
    start = at
    while start > 0 and at - start < _SHOWN_AFTER and not text[start - 1].isspace():
        start -= 1
    return start if start == 0 or text[start - 1].isspace() else at


_SPACE = re.compile(r"\s")

# What `_MALFORMED` found, in words (`why_no_value`): the first that matches the text after
# the number, else "a malformed number".
_MALFORMED_REASONS = ((re.compile(r",\d"), NoValue.DECIMAL_COMMA), (re.compile(r"['’_]\d"), NoValue.DIGIT_GROUPS),
                      (re.compile(r"\s*/"), NoValue.FRACTION), (re.compile(r":\d"), NoValue.RATIO))


def _malformed_reason(after: str) -> NoValue:
    return next((kind for pattern, kind in _MALFORMED_REASONS if pattern.match(after)), NoValue.MALFORMED)


def _markers(text: str) -> Tuple[frozenset, frozenset]:
    """(the positions of the numbers that list markers and citations are made of, those of
    the lone list markers) (rule 3): a list marker's start, every character of a citation;
    a lone marker (`_lone_marker`) is decided where the scan reaches it."""
    found, lone = set(), set()
    if "." in text or ")" in text:
        starts = [(m.start(2), int(m.group(2)), "#" in m.group("lead")) for m in _LIST_MARKER.finditer(text)]
        numbers = {}
        for _, number, _ in starts:
            numbers[number] = numbers.get(number, 0) + 1
        for position, number, heading in starts:
            # `### 1. Result`; a list: `1.` and `2.`, or markdown's `1.` on every item
            listed = number - 1 in numbers or number + 1 in numbers or (number == 1 and numbers[1] > 1)
            (found if heading or listed else lone).add(position)
    if "[" in text:
        found.update(i for m in _CITATION.finditer(text) for i in range(m.start(), m.end()))
    if "-" in text:
        found.update(i for m in _BASIS_SET.finditer(text) if _is_basis_set(text, m) for i in range(m.start(), m.end()))
    return frozenset(found), frozenset(lone)


def _is_basis_set(text: str, match: "re.Match") -> bool:
    """Whether `_BASIS_SET` found one: a capital `G` (`6-31G`), or a lower-case `g` with a
    `+`, a polarisation (`6-31g*`, `6-311+g(d,p)`) or after a method's `/` (`b3lyp/6-31g`),
    so that a glued mass range (`6-31g`) stays a range."""
    return (match.group("g") == "G" or bool(match.group("plus") or match.group("polarisation"))
            or text[match.start() - 1:match.start()] == "/")


def _lone_marker(text: str, match: "re.Match", markers: Tuple[frozenset, frozenset]) -> bool:
    """Whether a number alone at a line's start as a list marker (`1. `, `1) `: no other
    line starts so) is one: where the first value after it on its line follows it directly
    (`1) -5.2 eV`) or follows a word or sign a value follows (`1. The HOMO is -5.2 eV`, `1.
    LogP: 2.1`). Else it is the value: `350. The molecule has 3 rings.`, `3. It has a
    hydroxyl group.` Looks at that line only; `1.`, which opens a list, is one wherever a
    value follows it (`1. LogP 2.1`, `1. The LogP is:\n2.1`)."""
    gap_start = match.end() + 1  # after the `.` or `)`
    opens = match.group("mant") == "1"  # `1.` opens a list: `1. LogP 2.1`, `1. The LogP is:\n2.1` read 1
    line_end = text.find("\n", match.end())
    # (a lone `1.` is one per answer, `_markers`: looking past its line once stays linear)
    line_end = len(text) if line_end < 0 or opens else line_end
    for later in _NUMBER.finditer(text, gap_start, line_end):
        if _not_a_value(text, later, markers):
            continue
        # another number so placed is a value with a sentence after it, unless the value
        # follows at once or a value's cue
        return (opens or not text[gap_start:later.start()].strip()
                or bool(_VALUE_CUE.search(text, max(gap_start, later.start() - _VALUE_CUE_REACH), later.start())))
    return False


def _not_a_value(text: str, match: "re.Match", markers: Tuple[frozenset, frozenset]) -> bool:
    """Whether a number is one rule 3 skips: a locant, an ordinal, a name's number, a list
    marker or citation (`markers`), a step's number, or whole digits that begin a word.
    Each looks at the few characters around the number only (`pattern.match(text, pos)`,
    windows), a lone list marker at its own line: searching the whole text before it, for
    every number skipped so, took 52 s for an answer of 20,000 "HOMO-1" (quadratic)."""
    start, end = match.start(), match.end()
    if not match.group("exp") and (_LOCANT.match(text, end) or _ORDINAL.match(text, end)):
        return True
    if _exponent(text, match):
        return True  # "TPSA (Å^2): 20.2" read 2
    # the rest skip whole numbers only: `-5.2 eV`, `1.5e3` are values wherever they stand
    whole = not match.group("sign") and not match.group("exp") and match.group("mant").isdigit()
    if _LABEL_BEFORE.search(text, max(0, start - 2), start) and whole:
        return True  # "HOMO-1", "LUMO+1", "CID-702": a name's number, not the value (it made the answer invalid)
    if not whole:
        return False
    if start in markers[0]:
        return True  # `1. The HOMO is -5.2 eV` in a list, `### 1. Result`, `[1] LogP = 2.1`
    if start in markers[1]:
        return _lone_marker(text, match, markers)
    if _enumeration(text, start, end):
        return True  # "Step 1: ..."
    # `3D`, `2D`, `1H`, `13C`: digits that begin a word, as `XLogP3` ends one, unless the
    # letters are a unit (`5eV`, `180g/mol`), or start a malformed exponent (`5e`) or a
    # product (`120x100`), which rule 4 refuses
    if not _LETTER.match(text, end):
        return False
    window = text[end:end + _UNIT_REACH]
    return stated_unit(window) is None and not _MALFORMED.match(window) and not _PRODUCT.match(window)


def _exponent(text: str, match: "re.Match") -> bool:
    """Whether a whole number, signed or not, is the power of the unit or word before it:
    right after `^`, `^(` (LaTeX's `^{2}`), `**` or `**(` glued to a letter or digit (`Å^2`,
    `nm**2`, `cm^-1`, `\\AA^{2}`; was: the header `TPSA (Å^2): 20.2` read 2). After `**`
    only glued: `**LogP** 2` closes markdown emphasis."""
    if match.group("exp") or not match.group("mant").isdigit():
        return False
    start = match.start()
    return bool(_EXPONENT_BEFORE.search(text, max(0, start - _EXPONENT_REACH), start))


def _enumeration(text: str, start: int, end: int) -> bool:
    """Whether a whole number numbers a step, table, ... (`_ENUMERATION_BEFORE`): the word
    capitalised or at a line's start, and more text after the number."""
    if _INDEX_BEFORE.search(text, max(0, start - _ENUMERATION_REACH), start):
        return bool(_ENUMERATION_AFTER.match(text, end, end + _AFTER_REACH))
    word = _ENUMERATION_BEFORE.search(text, max(0, start - _ENUMERATION_REACH), start)
    if not word or not _ENUMERATION_AFTER.match(text, end, end + _AFTER_REACH):
        return False
    return word.group(0)[0].isupper() or bool(_LINE_START_BEFORE.search(text, max(0, word.start() - 8),
                                                                          word.start()))


def _stray_sign(before: str, match: "re.Match") -> bool:
    """Whether a sign or sign word before the number is not the number's own (rules 2 and 4):
    read without it, a negative answer scored as positive."""
    if match.group("sign"):  # "--2.5"; "x,- 5" (a one-space gap outside rule 2's places)
        stray = _SIGN_BEFORE.search(before) or (match.group("gap") and not _SIGN_CONTEXT.search(before))
    else:  # "HOMO-5.2" (glued to a word: `_NUMBER` does not take it), "-\t5.2", "-  5.2"
        stray = before.rstrip()[-1:] in ("+", "-", "±", "∓")  # "± 5" is no one value: it read 5
    return bool(stray or _SIGN_WORD.search(before))  # "minus 2.5", "negative -2.5"


# --------------------------------------------------------------------------- units

# A unit stated with the number, as (kind, factor to the kind's base unit: eV, g/mol, Å²).
# Energies per molecule and per mole convert alike (1 eV per molecule is 96.485 kJ/mol).
# Matched case-insensitively (but for `meV` and `MeV`, `K`, `J`, `Ry`, `nm`, `mM`, ...), not
# followed by a letter or digit, or in brackets, alone or with words: `-0.19 (Hartree)`,
# `[a.u.]` (read as eV before), `-0.19 (in Hartree)`, `(Hartree units)`, `(in units of
# Hartree)` (these three were read as eV).
_HARTREE_EV = 27.211386245988  # CODATA 2018
_RYDBERG_EV = _HARTREE_EV / 2  # 13.605693 eV: Quantum ESPRESSO's energy unit (`-0.38 Ry` was -0.38 eV)
_KCAL_MOL_EV = 1 / 23.060547830619
_KJ_MOL_EV = 1 / 96.48533212331
_JOULE_EV = 1 / 1.602176634e-19  # exact (SI 2019): `-8.3e-19 J/molecule` is -5.18 eV
_BARE_JOULE_KIND = "energy in joules, per molecule or per mole (write J/molecule or J/mol)"
_BOHR_ANGSTROM = 0.529177210903  # CODATA 2018 (`72.1 bohr²` was 72.1 Å²)
_POUND_GRAM = 453.59237  # exact
_MOLAR = 1.0  # mol/L, `M`: a concentration's factor, read only by `_log_of_molar` (no property is a concentration)
# "/mol", " mol-1" ("mol⁻¹" after NFKC), "mol^(-1)" (LaTeX's `^{-1}`), "gmol-1", "g.mol-1"
_PER_MOL = r"(?:\s*(?:/|per\s|[·⋅*])\s*|\.|\s*)mole?(?:\s*(?:\^\s*)?(?:-1|\(\s*-1\s*\)))?"
_SQUARED = r"\s*(?:(?:\^|\*\*)\s*)?2"  # no two `\s*` meet around an optional token: quadratic


def _unit_regex(pattern: str) -> "re.Pattern":
    # `(?=(\s*))\1` takes the spaces after a bracket whole (no unit starts with one): given
    # back one at a time, each of the patterns below retried its unit at every space of a
    # long run (`5 (` and 100000 spaces took 0.3 s). `pattern` has no capturing group.
    return re.compile(r"\s*(?:\((?=(\s*))\1(?:{0})\s*\)|\[(?=(\s*))\2(?:{0})\s*\]|(?:{0})(?![^\W_]))".format(pattern),
                      re.IGNORECASE)


_UNITS = [(_unit_regex(pattern), kind, factor) for pattern, kind, factor in (
    (r"(?-i:meV)|milli-?electron[\s-]?volts?", "energy", 1e-3),
    (r"(?-i:MeV)|mega-?electron[\s-]?volts?", "energy", 1e6),  # it was read as meV
    (r"mev", "meV or MeV (unclear case)", None),  # `MEV`, `mev`: invalid, not a guess
    (r"e\.?v|electron[\s-]?volts?", "energy", 1.0),
    (r"hartrees?|ha|e_?h|a\.\s?u\.?|au|atomic\s+units?", "energy", _HARTREE_EV),
    # `-20 mHa` was -20 eV, `-190 mHartree` invalid
    (r"(?-i:m)(?:hartrees?|ha|e_?h)|milli-?hartrees?", "energy", _HARTREE_EV / 1000),
    (r"(?-i:Ry)|rydbergs?", "energy", _RYDBERG_EV),  # `-5.2 Rydberg` was -5.2 eV
    (r"(?-i:mRy)|milli-?rydbergs?", "energy", _RYDBERG_EV / 1000),
    (r"(?:kcal|kilocalories?)" + _PER_MOL, "energy", _KCAL_MOL_EV),
    (r"(?:kj|kilojoules?)" + _PER_MOL, "energy", _KJ_MOL_EV),
    (r"(?:cal|calories?)" + _PER_MOL, "energy", _KCAL_MOL_EV / 1000),  # `-5 cal/mol` was -5 kcal/mol
    (r"(?:(?-i:J)|joules?)" + _PER_MOL, "energy", _KJ_MOL_EV / 1000),
    (r"(?:(?-i:J)|joules?)\s*(?:/|per\s)\s*molecules?", "energy", _JOULE_EV),
    (r"kcal|kilocalories?", "energy", _KCAL_MOL_EV),  # bare: per mole, as chemists write it (`-5 kcal`)
    (r"kj|kilojoules?", "energy", _KJ_MOL_EV),
    (r"cal|calories?", "energy", _KCAL_MOL_EV / 1000),
    # A bare `J` is SI, per particle in physics usage: `-8.3e-19 J` is a HOMO of -5.18 eV, and
    # per mole it was -8.6e-24 eV, inside HOMO's range and scored valid. Neither is assumed.
    (r"(?-i:J)|joules?", _BARE_JOULE_KIND, None),
    (r"(?:g|grams?)" + _PER_MOL + r"|daltons?|da|amu|u", "molar mass", 1.0),
    (r"(?:kg|kilograms?)" + _PER_MOL, "molar mass", 1000.0),  # was a mass: invalid
    (r"kda|kilodaltons?", "molar mass", 1000.0),
    (r"(?:lbs?|pounds?)" + _PER_MOL, "molar mass", _POUND_GRAM),  # `0.397 lb/mol` was 0.397 g/mol
    # Kinds no property here is scored in: recognised only so that an answer stating one
    # (`180 mg` for a molar mass, `300 K` for an energy) is invalid instead of read as
    # the property's unit. Never converted, so their factors are unused. Each of `-5.2
    # Debye`, `-5.2 THz`, `180.16 mM`, `180.16 mol/g`, `180.16 oz` was read as the number
    # in the property's unit.
    # A pressure is a measurement's condition (`bp 100 °C at 760 mmHg`, `At 1 atm, the LogP is
    # 2.1`): was no unit, so `At 760 mmHg the HOMO is -5.2 eV` read 760 eV, and `5psi` a word.
    (r"atm(?:ospheres?)?|(?:m|milli)?bars?|mm[^\S\n]?hg|torrs?|psi|(?-i:[hkMG]?Pa)|(?:hecto|kilo|mega)?pascals?",
     "pressure", None),
    (r"[µμu]g|mg|kg|g|(?:micro|milli|kilo)?grams?|lbs?|pounds?|oz|ounces?", "mass", None),
    (r"°\s*[cf]|(?-i:K)|kelvins?|degrees?(?:\s+(?:celsius|fahrenheit))?", "temperature", None),
    (r"%|percent", "percentage", None),
    # `-5.2 V` was read as eV, `20.2 Å` (no square) and `300 nm` as Å² and eV
    (r"(?-i:[munµμkMG]?V)|volts?", "voltage", None),
    (r"debyes?", "dipole moment", None),
    (r"(?:[kmgtpµμ]|kilo|mega|giga|tera|milli|micro)?-?(?:hz|hertz)|wavenumbers?", "frequency", None),
    # mol/L itself (factor 1: `_log_of_molar` reads a log solubility's `-3.4 mol/L` as the log)
    (r"mol(?:es?|s)?\s*(?:/|per\s)\s*(?:l|liters?|litres?|dm\s*(?:\^\s*)?3)", "concentration", _MOLAR),
    (r"(?:[mµμunp]|milli|micro|nano|pico)mol(?:es?|s)?\s*(?:/|per\s)\s*(?:l|liters?|litres?|dm\s*(?:\^\s*)?3)"
     r"|(?-i:[mµμunp]M)", "concentration", None),
    (r"(?:[mµμunp]|milli|micro|nano|pico)?mol(?:es?|s)?", "amount of substance", None),
    (r"pp[mbt]|parts\s+per\s+(?:million|billion|trillion)", "fraction (parts per million)", None),
    (r"liters?|litres?|(?-i:[mµμd]L)", "volume", None),
    (r"seconds?|minutes?|hours?", "time", None),
)]
# One capital letter, a unit only when set apart from the number (`-5.2 D`, `0.1 M`):
# glued, it begins a word (`3D`, rule 3).
_SPACED_UNITS = [(_unit_regex(pattern), kind, factor) for pattern, kind, factor in (
    (r"(?-i:D)", "dipole moment", None), (r"(?-i:M)", "concentration", _MOLAR), (r"(?-i:L)", "volume", None))]
# A stem of the units above after an SI prefix not listed with it (`keV`, `kHa`, `µEh`,
# `MDa`, `GJ`, `km^2`, `microhartree`): not converted, and not the number in the
# property's unit either (`-20 mHa` was -20 eV before millihartrees were listed). Tried
# last, so that every listed form (`meV`, `kcal`, `kDa`, `mg`, `nm^2`) is matched first.
_PREFIXED = _unit_regex(
    r"(?:(?-i:[yzafpnuµμmcdhkMGTPEZY]|da)|(?:yocto|zepto|atto|femto|pico|nano|micro|milli|centi|deci|hecto|kilo"
    r"|mega|giga|tera|peta|exa)-?)(?:(?-i:eV)|electron[\s-]?volts?|hartrees?|ha|e_?h|(?-i:J)|joules?|cal|calories?"
    r"|(?-i:Ry)|rydbergs?|da|daltons?|m" + _SQUARED + r"|met(?:er|re)s?" + _SQUARED + r")")
_PREFIXED_KIND = "unit with a prefix that is not converted"
# Lengths, as (pattern, factor to Å, or None for a macroscopic length no molecule is
# measured in), with a power written after (`Å2`, NFKC's `Å²`; `Å^2`, `Å**2`, `Å^(2)`,
# LaTeX's `Å^{2}`; `Å squared`) or before (`square Å`, `sq. Å`, `cubic Å`). Only the
# square of a molecular length is an area that converts: `20.2 Å³`, `20.2 A^3`, `20.2
# nm³` (volumes), `20.2 m²` were each read as 20.2 Å², and `Å^{2}` made an answer invalid.
_POWER_BEFORE = r"(?P<before>(?:square|cubic)\s+|(?:sq|cu)(?:\.\s*|\s+))?"
_POWER_AFTER = (r"(?:\s*(?:\^|\*\*)\s*(?:(?P<caret>[+-]?\d+)|\(\s*(?P<bracket>[+-]?\d+)\s*\))|(?P<glued>\d)(?!\d)"
                r"|[^\S\n]{1,3}(?P<word>squared|cubed))?(?![^\W_])")
_LENGTHS = [(re.compile(_POWER_BEFORE + "(?:" + pattern + ")" + _POWER_AFTER, re.IGNORECASE), factor)
            for pattern, factor in (
    (r"å|ångströms?|angstroms?|a(?=\s*(?:\^|\*\*))", 1.0),  # a bare `A` is a word: `A^2` only
    (r"(?-i:nm)|nanomet(?:er|re)s?", 10.0),
    (r"(?-i:pm)|picomet(?:er|re)s?", 0.01),
    (r"bohrs?|a_?0", _BOHR_ANGSTROM),
    (r"(?-i:[cmµμ]?m)|(?:centi|milli|micro)?met(?:er|re)s?|microns?", None),
)]
_POWER_WORDS = {"square": 2, "sq": 2, "squared": 2, "cubic": 3, "cu": 3, "cubed": 3}
# A second unit joined to the first (`kcal/mol/Å`, `eV·Å`, `mol/g`, `eV per K`): a compound
# unit the report does not convert (each was read as the first unit alone).
_COMPOUND = re.compile(r"[^\S\n]*(?:/|·|⋅|per[^\S\n]+)[^\S\n]*", re.IGNORECASE)
_COMPOUND_KIND = "compound unit that is not converted"
# A unit in brackets with words: `(in Hartree)`, `(Hartree units)`, `[in units of eV]`.
# Matched in the first `_UNIT_REACH` characters only: on `5 (in` and a long run of spaces
# the spaces before the bracket's end were tried anew for every split (2000 took 8 s).
_BRACKETED = re.compile(r"(?:\((?=(\s*))\1|\[(?=(\s*))\2)(?:in\s+)?(?:units?\s+of\s+)?(?P<unit>[^()\[\]\n]{1,40}?)"
                        r"(?P<units>\s+units?)?\s*[)\]]", re.IGNORECASE)
# A property's own unit, as (kind, factor): the unit its values are scored in.
_NO_UNIT_KIND = "quantity without a unit"  # LogP, a pKa: any unit stated is another kind
_SPEC_UNITS = {"eV": ("energy", 1.0), "kcal/mol": ("energy", _KCAL_MOL_EV), "g/mol": ("molar mass", 1.0),
               "Å²": ("area", 1.0)}


def stated_unit(after: str) -> Optional[Tuple[str, Optional[float], str]]:
    """(kind, factor, as written) of the unit at the start of `after` (the text after a
    number), or None."""
    spaced = after[:1].isspace()
    after = after.lstrip()  # once, not by each pattern's `\s*` (a long run of spaces was slow)
    if after[:1] in ("(", "["):
        bracketed = _bracketed_unit(after)
        if bracketed:
            return bracketed
    return _compound_unit(after, spaced)


# What may stand between a number and its unit on its line: markdown emphasis or code that
# closes around the number (`**-0.19** Hartree`, `` `-0.19` Ha ``), LaTeX's `~` (its `$` and
# `\,` are spaces by rule 1: `$-0.19~\text{Ha}$`) and the bracket the number stands in
# (`(-0.19 ± 0.01) Hartree`). Was: the unit after them was not read, and the number was taken
# in the property's unit (5 eV off), in predictions and references alike.
_CLOSER = re.compile(r"[^\S\n]*(?:\*{1,3}|_{1,3}|`+|~|[)\]])")
# The next cell of a markdown table, when all it holds is a unit: `| HOMO | -0.19 | Ha |`
_NEXT_CELL = re.compile(r"[^\S\n]*\|[^\S\n]*(?P<cell>[^|\n]{1,40}?)[^\S\n]*(?:\||$|\n)")
# `-0.19 in Hartree.`, `-21 in kJ/mol`, `0.2 in units of nm^2`, `-0.19, in atomic units`: the
# unit ends its clause (`_IN_UNIT_END`), so `2.1 in K-space` or `in water` are prose
_IN_UNIT = re.compile(r"[^\S\n]*,?[^\S\n]*in[^\S\n]+(?:units?[^\S\n]+of[^\S\n]+)?", re.IGNORECASE)
_IN_UNIT_END = re.compile(r"(?:[^\S\n]+units?)?[^\S\n]*(?:$|\n|[.,;:!?)\]*_`'\"])", re.IGNORECASE)


def unit_text_after(before: str, after: str) -> str:
    """The text after a number where its unit stands: `after` (the text after the number and
    its uncertainty, `Reading.after`) without the markdown, LaTeX `~` and brackets that close
    around the number (`_CLOSER`; a `)` or `]` only where one opened before the number on its
    line), looked for in its first `_UNIT_REACH` characters."""
    window = after[:_UNIT_REACH]
    line = before[before.rfind("\n") + 1:]
    opened = line.count("(") + line.count("[") - line.count(")") - line.count("]")
    position = 0
    while True:
        closer = _CLOSER.match(window, position)
        if closer is None:
            return after[position:]
        if closer.group(0).strip() in (")", "]"):
            if opened <= 0:
                return after[position:]
            opened -= 1
        position = closer.end()


def _unit_after(before: str, after: str) -> Optional[Tuple[str, Optional[float], str]]:
    """The unit stated after a number (`stated_unit`), also past markdown, LaTeX and bracket
    closers (`unit_text_after`), in the table cell that follows (`| -0.19 | Ha |`) or as
    `in <unit>` (`-0.19 in Hartree`); was: only right after the number or its uncertainty."""
    text = unit_text_after(before, after)[:_UNIT_REACH]
    unit = stated_unit(text)
    if unit is not None:
        return unit
    cell = _NEXT_CELL.match(text)
    if cell:
        unit = _compound_unit(cell.group("cell"), spaced=True)
        return unit if unit is not None and unit[2] == cell.group("cell") else None
    words = _IN_UNIT.match(text)
    if words:
        unit = _compound_unit(text[words.end():], spaced=True)
        if unit is not None and _IN_UNIT_END.match(text, words.end() + len(unit[2])):
            return unit[0], unit[1], f"in {unit[2]}"
    return None


def _bracketed_unit(text: str) -> Optional[Tuple[str, Optional[float], str]]:
    """The unit that a bracket at the start of `text` holds, alone or with words (`(in
    Hartree)`, `(Hartree units)`), or None when it holds anything else."""
    match = _BRACKETED.match(text[:_UNIT_REACH])
    if not match:
        return None
    for inner in (match.group("unit").strip(), (match.group("unit") + (match.group("units") or "")).strip()):
        # `(in atomic units)`: `units` is the unit's own word here (was: `atomic`, no unit)
        unit = _compound_unit(inner, spaced=True)
        if unit and unit[2] == inner:
            return unit[0], unit[1], match.group(0)
    return None


def _compound_unit(text: str, spaced: bool) -> Optional[Tuple[str, Optional[float], str]]:
    """`_unit_at`, or a compound unit (`_COMPOUND`) when a second unit is joined to it."""
    unit = _unit_at(text, spaced)
    if unit is None:
        return None
    end = len(unit[2])
    joint = _COMPOUND.match(text, end)
    if joint:
        other = _unit_at(text[joint.end():], spaced=False)
        if other:
            return _COMPOUND_KIND, None, text[:joint.end() + len(other[2])]
    return unit


def _unit_at(text: str, spaced: bool) -> Optional[Tuple[str, Optional[float], str]]:
    """(kind, factor, as written) of one unit at the very start of `text`, or None; a
    one-letter unit only where the number was `spaced` from it."""
    for pattern, kind, factor in _UNITS:
        match = pattern.match(text)
        if match:
            return kind, factor, match.group(0).strip()
    length = _length_at(text)
    if length:
        return length
    match = _PREFIXED.match(text)
    if match:
        return _PREFIXED_KIND, None, match.group(0).strip()
    for pattern, kind, factor in (_SPACED_UNITS if spaced else ()):
        match = pattern.match(text)
        if match:
            return kind, factor, match.group(0).strip()
    return None


def _length_at(text: str) -> Optional[Tuple[str, Optional[float], str]]:
    """A length, or a power of one, at the start of `text` (`_LENGTHS`): an area in a
    molecular unit converts to Å²; any other is a kind no property here is scored in."""
    for pattern, factor in _LENGTHS:
        match = pattern.match(text)
        if match:
            break
    else:
        return None
    power = 1
    for name in ("before", "word"):
        if match.group(name):
            power *= _POWER_WORDS[match.group(name).strip().rstrip(".").lower()]
    written = match.group("caret") or match.group("bracket") or match.group("glued")
    power *= int(written) if written else 1
    if power == 2 and factor is not None:
        kind, factor = "area", factor * factor
    else:
        kind, factor = {1: "length", 2: "area in a unit that is not converted", 3: "volume",
                        -1: "inverse length (a wavenumber)"}.get(power, f"length to the power {power}"), None
    return kind, factor, match.group(0)


# A unit stated before the number, for the value after it: `HOMO (Hartree): -0.19`, `MW [kDa]
# = 0.18`, `TPSA (nm²) 0.202`, `Molecular weight in kDa: 0.18`, `The HOMO (in eV) is -5.2`
# (each was read in the property's own unit). Looked for in the characters right before the
# number (`_UNIT_REACH`); a bracket or `in` that holds no unit is ordinary text. Between the
# header and the number may stand cues (`:`, `=`, `≈`, `~`, a table's `|`, is, are, was, were,
# equals, of, about, around, approximately, approx., roughly, nearly, circa, ca.) and markdown
# emphasis or a comma (`**HOMO (Hartree):** ~-0.19`, `| HOMO (Hartree) | -0.19 |`, `The HOMO,
# in Hartree, is -0.19`); was: the number right after the header (or `:`, `=`, `≈`, `~`, is,
# was, equals, of) only, and each of these read in the property's unit (5 eV off). An `in`
# header needs one of these before the number (`in kDa: 0.18`, `in kDa, 0.18`; `in kDa 0.18`
# is prose). Each token is matched whole (`\*{1,3}(?!\*)`): no run is split between
# repetitions (linear in the window).
_HEADER_APPROXIMATELY = r"about|around|approximately|approx\.?|roughly|nearly|circa|ca\."
_HEADER_CUE = (r"(?:[:=≈~|]|(?<![^\W\d_])(?:is|are|was|were|equals|of|" + _HEADER_APPROXIMATELY
               + r")(?![^\W\d_]))")
_HEADER_FILLER = r"(?:\*{1,3}(?!\*)|_{1,3}(?!_)|,)"
_HEADER_TOKEN = r"(?:[^\S\n]*(?:" + _HEADER_CUE + "|" + _HEADER_FILLER + r"))"
# A word of an `in` header's unit: no cue word (`in Hartree is`), comma, emphasis or bracket,
# but `**` before a power (`in Å**2:`)
_HEADER_WORD = (r"(?!(?:in|is|are|was|were|equals|" + _HEADER_APPROXIMATELY + r")(?![^\W\d_]))"
                r"(?:[^\s:=,|*~≈()\[\]]|\*\*(?=[+-]?\d))+")
_UNIT_HEADER = re.compile(r"(?:(?P<bracket>\([^()\n]{1,40}\)|\[[^\[\]\n]{1,40}\])" + _HEADER_TOKEN + "{0,8}"
                          + r"|(?<![^\W\d_])in[^\S\n]+(?P<words>" + _HEADER_WORD + r"(?:[^\S\n]+" + _HEADER_WORD
                          + r"){0,3})" + _HEADER_TOKEN + r"{1,8})\s*\Z", re.IGNORECASE)
# `Å^(2)` (LaTeX's `Å^{2}`) as `Å^2` in a header: a bracket in the header's bracket ended it
# (`TPSA (Å^(2)): 20.2` read no header)
_BRACKETED_POWER = re.compile(r"(\^|\*\*)[^\S\n]*\([^\S\n]*([+-]?\d{1,2})[^\S\n]*\)")


# A bracket holding one Latin letter before the number names the quantity, not its unit:
# `The molar mass (M) is 180.16 g/mol`, `The energy (E) is -5.2 eV` (was: `(M)` read as the
# unit M, mol/L, which made the answer invalid, or two units with the g/mol after it). A
# unit spelled out, `(Hartree)`, `(kDa)`, `(Å²)`, stays a header.
_QUANTITY_SYMBOL = re.compile(r"[(\[][^\S\n]*[A-Za-z][^\S\n]*[)\]]")


# IUPAC's quantity calculus, `HOMO / Hartree: -0.19`, `E/eV = -5.2` (was: read in the
# property's unit): a word, `/`, the unit, then a cue as for `_UNIT_HEADER`. `g/mol: 180` is
# a unit written whole, not a quantity over a unit (`_unit_before`).
_SLASH_HEADER = re.compile(r"(?P<quantity>[^\s/]*)[^\S\n]*/[^\S\n]*(?P<words>" + _HEADER_WORD + r"(?:[^\S\n]+"
                           + _HEADER_WORD + r"){0,3})" + _HEADER_TOKEN + r"{1,8}\s*\Z", re.IGNORECASE)
# A sentence that opens with its unit, `In Hartree, the HOMO is -0.19.` (was: read in eV):
# `In <unit>,` at the text's, a line's or a sentence's start, and no sentence end between it
# and the number.
_SENTENCE_UNIT = re.compile(r"(?:\A|[.!?][^\S\n]+|\n)[^\S\n]*(?:\*{1,3}|_{1,3})?in[^\S\n]+(?P<words>[^,.!?\n]{1,40}?)"
                            r"[^\S\n]*,(?:[^.!?\n]|[.!?](?!\s|\Z))*\Z", re.IGNORECASE)
# A number right after `pH` is a pH, not a property's value: `At pH 7.4, the LogD is 1.2`
# read 7.4 (and `the HOMO at pH 7` read 7 eV).
_PH_BEFORE = re.compile(r"(?<![^\W\d_])pH[^\S\n]*(?:=|:|of|is)?[^\S\n]*\Z")
_PH = ("pH", None, "pH")
_SENTENCE_REACH = 256  # characters before the number in which a sentence's `In <unit>,` is looked for


def _unit_before(before: str) -> Optional[Tuple[str, Optional[float], str]]:
    """The unit a header right before the number states (`_UNIT_HEADER`, `_SLASH_HEADER`),
    the unit a sentence opens with (`_SENTENCE_UNIT`), `pH` (`_PH_BEFORE`), or None."""
    window = _BRACKETED_POWER.sub(r"\1\2", before[-_UNIT_REACH:])
    if _PH_BEFORE.search(window):
        return _PH
    header = _UNIT_HEADER.search(window)
    if not header:
        return _slash_unit(window) or _sentence_unit(before)
    if header.group("bracket"):
        if _QUANTITY_SYMBOL.fullmatch(header.group("bracket")):
            return None
        return _bracketed_unit(header.group("bracket"))
    words = header.group("words").strip()
    return _bracketed_unit(f"({words})")  # `in Hartree units:` as `(Hartree units)`


def _slash_unit(window: str) -> Optional[Tuple[str, Optional[float], str]]:
    """The unit of a quantity-calculus header (`_SLASH_HEADER`: `HOMO / Hartree:`), or None;
    None too where the quantity and unit together are one unit (`g/mol:`, `kcal/mol =`)."""
    header = _SLASH_HEADER.search(window)
    if not header:
        return None
    joined = f"{header.group('quantity')}/{header.group('words')}"
    whole = _compound_unit(joined, spaced=False) if header.group("quantity") else None
    if whole is not None and whole[2] == joined:
        return None
    return _bracketed_unit(f"({header.group('words').strip()})")


def _sentence_unit(before: str) -> Optional[Tuple[str, Optional[float], str]]:
    """The unit a sentence opens with (`_SENTENCE_UNIT`: `In Hartree, the HOMO is`), or None."""
    # from a few sentences back only (search's `pos`: `\A` stays the text's own start)
    opening = _SENTENCE_UNIT.search(before, max(0, len(before) - _SENTENCE_REACH))
    return None if opening is None else _bracketed_unit(f"({opening.group('words').strip()})")


def _not_one_value_reason(after: str) -> Optional[NoValue]:
    """NoValue.RANGE, CHOICE or BOUND when the text after a number makes it one end of
    a range or one of a choice (`_RANGE_AFTER`), or a bound (`_BOUND_AFTER`): rule 4; else
    None. An uncertainty and a known unit are passed over first (`5 eV or more`, `5 ± 0.1
    or more`): the `-1` of `kcal·mol-1` (`mol⁻¹`) is an exponent, not `to 1`."""
    if _BOUND_AFTER.match(after):  # `5+` first: `+/-` and `+-` would start an uncertainty
        return NoValue.BOUND
    uncertainty = _UNCERTAINTY.match(after)
    after = after[uncertainty.end():] if uncertainty else after
    unit = stated_unit(after)
    if unit is not None:
        after = after.lstrip()[len(unit[2]):]
    if _BOUND_AFTER.match(after):
        return NoValue.BOUND
    other = _RANGE_AFTER.match(after)
    if other and other.group("choice"):
        # the other number of a choice is a number: not the digits that begin a word, `2 or
        # 3D models`, `2.1 vs 2nd` (a unit, `2 or 3eV`, or an exponent, `2 or 3e5`, may follow)
        rest = after[other.end():]
        word = _LETTER.match(rest) and stated_unit(rest) is None and not re.match(r"[eEdD][+-]?\d", rest)
        return None if word else (NoValue.RANGE if other.group("choice").startswith("..") or
                                  re.search(r"through|thru|to", other.group("choice"), re.IGNORECASE)
                                  else NoValue.CHOICE)
    return NoValue.RANGE if other else None


def _mentions(text: str, spec: "PropertySpec") -> list:
    """(start, end, as written, whether it names `spec`: `_is_own`) of each known property's
    name or alias in the normalised text, longest first where they overlap (`HOMO-LUMO gap`
    is the gap, not the LUMO)."""
    global _MENTION
    if _MENTION is None:
        labels = sorted({label for spec in PROPERTY_RANGES.values() for label in (spec.name,) + spec.aliases}
                        | {label for names in _OTHER_PROPERTIES for label in names}, key=len, reverse=True)
        # the lookahead for a name's first letter spares the alternatives at every other word
        firsts = "".join(sorted({c for label in labels for c in (label[0].lower(), label[0].upper())}))
        _MENTION = re.compile(r"(?<![^\W_])(?=[" + re.escape(firsts) + r"])(?:" + "|".join(
            r"[ \t_-]?".join(re.escape(word) for word in re.findall(r"[^\W_]+", label)) for label in labels)
                              + r")(?![^\W_])", re.IGNORECASE)
    own: Dict[str, bool] = {}  # by the name as written: an answer repeats few names many times
    return [(m.start(), m.end(), m.group(0), own[m.group(0)] if m.group(0) in own
             else own.setdefault(m.group(0), _is_own(m.group(0), spec))) for m in _MENTION.finditer(text)
            if _names_a_property(text, m.start(), m.end())]


_MENTION: Optional["re.Pattern"] = None  # built on first use from PROPERTY_RANGES (`_mentions`)
# Properties the report does not score that answers state beside the asked one, each a name
# and its aliases: their mentions label numbers as the known properties' do (`_Labels`), so
# `pKa 4.2, LogP 2.1` is 2.1 for LogP (was 4.2: pKa was no property's name, and its number
# the first), `IC50 = 5 nM, LogP 2.1` 2.1, `Density 1.2 g/cm³, molecular weight 180.16
# g/mol` 180.16. Words that often name no property (`Ki`, `charge`, `dipole` as in `dipole-bound`) are left out.
# Counts among them: a whole number right before their name is theirs (`13 heavy atoms`, `2 HBD`)
_COUNT_PROPERTIES = (
    ("rotatable bonds", "rotatable bond", "rotatable bond count"),
    ("hydrogen bond donors", "hydrogen bond donor", "H-bond donors", "H-bond donor", "HBD"),
    ("hydrogen bond acceptors", "hydrogen bond acceptor", "H-bond acceptors", "H-bond acceptor", "HBA"),
    ("heavy atoms", "heavy atom", "heavy atom count"),
)
_OTHER_PROPERTIES = (
    ("pKa", "pKa1", "pKa2"), ("pKb",), ("pKi",), ("pKd",), ("pIC50", "IC50"), ("pEC50", "EC50"),
    ("melting point", "mp"), ("boiling point", "bp"), ("flash point",), ("freezing point",),
    ("density",), ("refractive index",), ("dipole moment",), ("polarizability", "polarisability"),
    ("vapor pressure", "vapour pressure"),
    ("formal charge",),
) + _COUNT_PROPERTIES
_OTHER_BY_KEY = {name_key(label): tuple(name_key(n) for n in names) for names in _OTHER_PROPERTIES for label in names}
_COUNTS = frozenset(name_key(label) for names in _COUNT_PROPERTIES for label in names)
# Words around `density` that make it no property (`density functional theory`, `electron density`)
_NOT_DENSITY_BEFORE = re.compile(r"(?<![^\W\d_])(?:electron|charge|spin|probability|current|energy|number|state|"
                                 r"orbital)[ \t-]*\Z", re.IGNORECASE)
_NOT_DENSITY_AFTER = re.compile(r"[ \t-]*(?:functionals?|fitting|matrix|matrices|of[ \t]+states|plots?|maps?|"
                                r"surfaces?|isosurfaces?|distributions?)(?![^\W\d_])", re.IGNORECASE)
# What stands between an unscored property's name and a number it labels: a bracketed unit,
# emphasis and value cues (`pKa 4.2`, `pKa = 4.2`, `melting point (°C): 150`, `IC50 of 5 nM`)
_ATTACHED = re.compile(r"(?:[^\S\n]*[*_`]*[^\S\n]*\([^()\n]{1,20}\))?" + _HEADER_TOKEN + r"{0,4}[^\S\n*_`]*",
                       re.IGNORECASE)
_BARE = re.compile(r"[^\S\n*_`]*")  # `pKa 4.2`: the name and the number, nothing but spaces and emphasis between


def _is_other(mention: tuple) -> bool:
    """Whether a mention (`_mentions`) names a property the report does not score (`_OTHER_PROPERTIES`)."""
    return not mention[3] and name_key(mention[2]) in _OTHER_BY_KEY


def _names_a_property(text: str, start: int, end: int) -> bool:
    """Whether a mention at text[start:end] names a property: not `density` in `density
    functional`, `electron density`, `charge density` (was: it labelled the HOMO's number)."""
    if name_key(text[start:end]) != "density":
        return True
    return not (_NOT_DENSITY_BEFORE.search(text, max(0, start - 16), start) or _NOT_DENSITY_AFTER.match(text, end))


def _is_own(mention: str, spec: "PropertySpec") -> bool:
    """Whether a mention (`_mentions`) names the property `spec`: its name or an alias; for a
    property that is not a known one (`property:homo_ev`, a question file's `pKa`), a name
    inside the other (`HOMO` and `homo_ev`, `logP` and `logp_exp`), so that its own name is
    never taken for another property's."""
    key, own = name_key(mention), name_key(spec.name)
    if PROPERTY_RANGES.get(spec.name) is spec:
        return key in _BY_KEY and _BY_KEY[key].name == spec.name
    if key in _OTHER_BY_KEY:
        # `bp` names a question file's `Boiling Point`, and `boiling point` a `property:bp_celsius`;
        # a short alias only as a word of the name (`mp` is inside `complexity`)
        words = re.findall(r"[^\W_]+", spec.name.casefold())
        return bool(own) and any(alias == own or alias in words or (len(alias) > 3 and alias in own)
                                 for alias in _OTHER_BY_KEY[key])
    return bool(key) and bool(own) and (key in own or own in key)


# Where a clause ends, for labels (`_Labels`): `;`, a line's end, a comma before a space, or
# a sentence's end (`.`, `!`, `?` before a capital: `approx. -5.2` and `ca. 5` go on)
_CLAUSE_BREAK = re.compile(r"[;\n]|,(?=\s)|[.!?](?=[^\S\n]+[*_#>`\"'(\[]*[A-Z])")
_LABEL_REACH = 120  # characters before a number in which the mention that labels it is looked for
# Mentions that qualify the one before them label nothing: `the energy gap between the HOMO and
# LUMO is 4.1 eV` (the gap), and one of several in a bracket (`Gap (HOMO-LUMO): 4.1`); a bracket
# that holds one mention alone restates the name before it (`Lipophilicity (LogP): 2.1`)
_QUALIFIER_BEFORE = re.compile(r"(?<![^\W\d_])between[ \t]+(?:the[ \t]+)?(?:[^\W\d_][\w-]*[ \t]+(?:and|&)[ \t]+"
                               r"(?:the[ \t]+)?)?\Z", re.IGNORECASE)
_QUALIFIER_REACH = 48  # characters
_ALONE_IN_BRACKET_BEFORE = re.compile(r"[(\[][ \t]*(?:the[ \t]+)?\Z", re.IGNORECASE)
_ALONE_IN_BRACKET_AFTER = re.compile(r"[ \t]*[)\]]")
# A number, its unit word and closing emphasis right before such a bracket (`-5.2 eV (HOMO)`)
# A bracket closed, then a value cue and a number: `(LUMO) = -1.1`, `(HOMO): -5.2`, `(LUMO) is -1.1`
_BRACKET_HEADER = re.compile(r"[ \t]*[)\]][ \t*_`]*(?:[:=]|(?:is|was)(?![^\W\d_]))[ \t*_`]*[+−-]?\d", re.IGNORECASE)
_NUMBER_BEFORE_BRACKET = re.compile(r"(?<![^\W\d_])\d+(?:\.\d+)?(?:[ \t]*[^\W\d_][^\s()\[\]\d]{0,15})?[ \t*_`]*\Z")
_JOINED = re.compile(r"[ \t]*(?:/|&|(?<![^\W\d_])and(?![^\W\d_]))[ \t]*(?:the[ \t]+)?", re.IGNORECASE)
# A mention right after a number, its uncertainty, unit and closing emphasis, that labels it:
# `-1.1 eV (LUMO)`, `-5.2 eV (the HOMO; ...)`, `-5.2 eV is the HOMO energy`, `-5.2 eV for the HOMO`
_CLOSING_EMPHASIS = re.compile(r"[*_`]*")
_LABEL_AFTER = re.compile(r"[^\S\n]*(?:(?P<bracket>[(\[])[^\S\n]*|(?:is|was|for)[^\S\n]+)(?:(?:the|its)[^\S\n]+)?",
                          re.IGNORECASE)
_BRACKET_LABEL_END = re.compile(r"[^\S\n]*[)\];,]")  # `(LUMO)`, `(the HOMO;`: not `(LUMO: -1.1 eV)`
# A line that holds only a label (`### LUMO`, `**LUMO:**`) labels a number that starts the next line
_LABEL_LINE_BEFORE = re.compile(r"[ \t#>*_|]*(?:the[ \t]+)?", re.IGNORECASE)
_LABEL_LINE_AFTER = re.compile(r"[ \t*_:|]*(?:\n[ \t]*)+[>*_|]*(?:[-+*][ \t]+)?[ \t]*")


@dataclass(frozen=True)
class _Labels:
    """The known properties an answer names (`_mentions`) and where its clauses end
    (`_CLAUSE_BREAK`), to tell which property's mention labels a number (`label`)."""
    text: str
    mentions: list
    starts: list  # each mention's start, in order
    breaks: list  # each clause break's position, in order

    @classmethod
    def of_answer(cls, text: str, spec: "PropertySpec") -> Optional["_Labels"]:
        """The labels of an answer that names another known property than `spec`'s, else None:
        then nothing is told apart and the first number that is a value decides."""
        mentions = _mentions(text, spec)
        if all(m[3] for m in mentions):
            return None
        return cls(text, mentions, [m[0] for m in mentions], [m.start() for m in _CLAUSE_BREAK.finditer(text)])

    def label(self, start: int, end: int) -> Optional[tuple]:
        """The mention (`_mentions`) that labels the number at text[start:end], or None: the
        nearest one before it in its clause (`HOMO: -5.2`, `the LUMO is -1.1`; one inside a
        bracket closed before the number qualifies the name before it, `Gap (HOMO-LUMO): 4.1`),
        else one right after it (`_LABEL_AFTER`: `-1.1 eV (LUMO)`, `-5.2 eV is the HOMO`), else
        a line above that holds only a label (`### LUMO` then `-1.1 eV`). A number that comes
        before the asked property's mention is not skipped for that (was, 4a2dea4: reading
        started after the first mention of the asked property, so `-5.2 eV. The HOMO energy
        is high, ... HOMO-LUMO gap.` had no value, and `Answer: -5.2 eV (the HOMO; the LUMO
        would be near -1 eV)` read -1)."""
        return self._count(start, end) or self._before(start) or self._after(end) or self._line_above(start)

    def _count(self, start: int, end: int) -> Optional[tuple]:
        """A count's name right after a whole number (`13 heavy atoms`, `2 HBD`), which labels
        it before any mention before it (was: `With 13 heavy atoms, the molecular weight is
        180.16` read 13 as the molecular weight)."""
        if not self.text[start:end].isdigit():
            return None
        gap = _BARE.match(self.text, end).end()
        i = bisect.bisect_left(self.starts, gap)
        if gap == end or i == len(self.starts) or self.starts[i] != gap:
            return None
        mention = self.mentions[i]
        return mention if _is_other(mention) and name_key(mention[2]) in _COUNTS else None

    def _before(self, start: int) -> Optional[tuple]:
        at = bisect.bisect_right(self.breaks, start - 1) - 1
        floor = max(self.breaks[at] + 1 if at >= 0 else 0, start - _LABEL_REACH)
        text = self.text
        for i in range(bisect.bisect_left(self.starts, start) - 1, -1, -1):
            mention = self.mentions[i]
            if mention[0] < floor:
                return None
            if mention[1] > start or _QUALIFIER_BEFORE.search(text, max(0, mention[0] - _QUALIFIER_REACH), mention[0]):
                continue
            if _is_other(mention) and not self._attached(i, start, floor):
                continue
            if self._closed_after(mention[1], start) and not self._restates(mention):
                continue
            return self._group(i)
        return None

    def _attached(self, i: int, start: int, floor: int) -> bool:
        """Whether the unscored property's mention `i` labels the number at `start`: only one
        attached to it (`_ATTACHED`: `pKa 4.2`, `pKa = 4.2`, `IC50 of 5 nM`), and through a cue
        (`:`, `is`, ...) only where the asked property is not named before it in the clause:
        `The LogP accounting for the hydrogen bond donors is 2.1` is the LogP's 2.1. Was: the
        nearest mention before a number in its clause labelled it, and these answers had no value."""
        mention, text = self.mentions[i], self.text
        if _BARE.fullmatch(text, mention[1], start):
            return True
        if not _ATTACHED.fullmatch(text, mention[1], start):
            return False
        # only the mentions in the clause, walking back (all of them, for each number, was quadratic)
        return not any(self.mentions[j][3] for j in range(i - 1, bisect.bisect_left(self.starts, floor) - 1, -1))

    def _restates(self, mention: tuple) -> bool:
        """Whether a mention alone in a bracket restates the name before it (`Lipophilicity
        (LogP): 2.1`), so labels the number after the bracket; one right after a number labels
        that number (`_after`), not the next: `4.2 (pKa) and 2.1 (LogP)` and `-5.2 eV (HOMO) and
        -1.1 eV (LUMO)` read the pKa's and HOMO's label for the second number (was: no value)."""
        text = self.text
        bracket = _ALONE_IN_BRACKET_BEFORE.search(text, max(0, mention[0] - 8), mention[0])
        if not bracket or not _ALONE_IN_BRACKET_AFTER.match(text, mention[1]):
            return False
        if _BRACKET_HEADER.match(text, mention[1]):
            # `MO 43 (LUMO) = -1.1 eV`: a header for the number after it, whatever stands before
            # the bracket (was: the 43 took the label, and the LUMO read the HOMO's -5.2)
            return True
        return not _NUMBER_BEFORE_BRACKET.search(text, max(0, bracket.start() - _UNIT_REACH), bracket.start())

    def _group(self, i: int) -> tuple:
        """The mention `i`, or the asked property's mention among those joined to it (`HOMO/LUMO:
        -5.2 / -1.1`, `The HOMO and LUMO are -5.2 and -1.1 eV`: which number is whose is not
        told, and the first is read, as before 4a2dea4)."""
        first = i
        while first > 0 and _JOINED.fullmatch(self.text, self.mentions[first - 1][1], self.mentions[first][0]):
            first -= 1
        return next((m for m in self.mentions[first:i + 1] if m[3]), self.mentions[i])

    def _closed_after(self, position: int, start: int) -> bool:
        """Whether text[position:start] closes a bracket it did not open (the mention before
        `position` stands inside it)."""
        depth = 0
        for char in self.text[position:start]:
            if char in "([":
                depth += 1
            elif char in ")]":
                if depth == 0:
                    return True
                depth -= 1
        return False

    def _after(self, end: int) -> Optional[tuple]:
        text = self.text
        uncertainty = _UNCERTAINTY.match(text, end)
        position = uncertainty.end() if uncertainty else end
        rest = text[position:position + _UNIT_REACH]
        unit = stated_unit(rest)
        if unit is not None:
            position += len(rest) - len(rest.lstrip()) + len(unit[2])
        position = _CLOSING_EMPHASIS.match(text, position).end()
        cue = _LABEL_AFTER.match(text, position)
        if cue is None:
            return None
        i = bisect.bisect_left(self.starts, cue.end())
        if i == len(self.starts) or self.starts[i] != cue.end():
            return None
        mention = self.mentions[i]
        if cue.group("bracket") and not _BRACKET_LABEL_END.match(text, mention[1]):
            return None
        return mention

    def _line_above(self, start: int) -> Optional[tuple]:
        i = bisect.bisect_left(self.starts, start) - 1
        if i < 0 or start - self.mentions[i][1] > _LABEL_REACH:
            return None
        mention = self.mentions[i]
        line_start = self.text.rfind("\n", 0, mention[0]) + 1
        if (_LABEL_LINE_BEFORE.fullmatch(self.text, line_start, mention[0])
                and _LABEL_LINE_AFTER.fullmatch(self.text, mention[1], start)):
            return mention
        return None


def _condition(reading: Reading, spec: "PropertySpec") -> bool:
    """Whether a number is stated as a measurement's condition, a pH (`at pH 7.4`, `(pH=7.4)`),
    a temperature (`at 25 °C`, `298 K`) or a pressure (`at 1 atm`, `760 mmHg`, `under 1 bar`),
    for a property of another kind (`_conditions_for`): no value of theirs, skipped
    (`_parse_or_reason`). Was (4a2dea4): the answer was invalid, `The LogD at pH 7.4 is 1.2.`
    too; before it, 7.4; a pressure was read as the value (`At 1 atm, the LogP is 2.1` was 1)."""
    conditions = _conditions_for(spec)
    if not conditions:
        return False
    if "pH" in conditions and _PH_BEFORE.search(reading.before[-_UNIT_REACH:]):
        return True
    unit = _unit_after(reading.before, reading.after)
    return unit is not None and unit[0] in conditions


def _conditions_for(spec: "PropertySpec") -> frozenset:
    """The kinds a number of this property is measured under, not its value: pH, temperature
    and pressure for a property that reads units or has none (`converts_units`,
    `PropertySpec.refused_kinds`); for any other, those its name does not make its own kind
    (`_implied_kind`: `Boiling Point` skips `at 760 mmHg`, not its `100 °C`), and none where
    the name tells no kind (`property:<name>`: a temperature may be its value)."""
    if converts_units(spec) or spec.refused_kinds:
        return _CONDITIONS
    implied = _implied_kind(spec)
    return _CONDITIONS - {implied} if implied is not None else frozenset()


# What a property's name says its kind is, for a property whose unit is not known (a
# question file's `Boiling Point`, `property:bp_celsius`, `property:logp_exp`): then a
# number stated in a unit of another kind is not its value (`1.5 eV` for a boiling point,
# `300 K` for `property:homo`). Was: every unit taken as stated. Each kind: the first words
# that name it (`bp_celsius`, `homo_ev`), the whole names (`tm`, `energy`: `tm_score`,
# `energy_rank` name no kind), and the starts of the name's key (`name_key`: `Boiling Point`,
# `melting_temperature_c`). Was: any word anywhere (`temperature_sensitive_yield` was a temperature).
_IMPLIED_WORDS = (
    ("temperature", frozenset({"bp", "mp"}), frozenset({"tm", "tb", "tg", "temperature", "temp"}),
     ("boilingpoint", "meltingpoint", "freezingpoint", "flashpoint", "boilingtemp", "meltingtemp")),
    ("pressure", frozenset(), frozenset({"pressure"}), ("vaporpressure", "vapourpressure")),
    ("molar mass", frozenset({"mw", "molwt"}), frozenset(), ("molecularweight", "molarmass", "molecularmass")),
    ("energy", frozenset({"homo", "lumo", "gap", "scf"}), frozenset({"energy", "enthalpy", "freesolv"}),
     ("freeenergy", "totalenergy", "hydrationfreeenergy")),
    (_NO_UNIT_KIND, frozenset({"pka", "pkb", "pki", "pkd", "pic50", "pec50"}), frozenset({"complexity"}), ()),
)
# A log's first word: `log`, `logP`, `xlogp3`, `log10`, `logKow`; not `logistic`, `login`
_LOG_WORD = re.compile(r"x?log(?:[a-z]{1,3}\d*|\d+)?")


def _implied_kind(spec: "PropertySpec") -> Optional[str]:
    """The kind of unit a property's name implies (`_IMPLIED_WORDS`; a first word `log...`,
    `_LOG_WORD`, is a log: no unit), or None."""
    return implied_kind(spec.name)


def implied_kind(name: str) -> Optional[str]:
    """The kind of unit a property name implies, from its first word or the whole name only
    (`_implied_kind`), or None."""
    words = re.findall(r"[^\W_]+", name.casefold())
    if not words:
        return None
    key = name_key(name)
    if _LOG_WORD.fullmatch(words[0]):
        return _NO_UNIT_KIND
    for kind, firsts, wholes, starts in _IMPLIED_WORDS:
        if words[0] in firsts or (len(words) == 1 and words[0] in wholes) or key.startswith(starts):
            return kind
    return None


def _implied_note(name: str) -> str:
    """The note (metrics.json) saying which kind of unit a property's name implies, or ""."""
    kind = implied_kind(name)
    if kind is None:
        return ""
    if kind == _NO_UNIT_KIND:
        return "its name implies no unit: a number stated with a unit is invalid"
    note = f"its name implies {_a(kind)}: a number stated in a unit of another kind is invalid"
    if kind != "temperature":
        return note + f"; one in {_a(kind)} is taken as stated, not converted"
    named = _scale(" ".join(re.findall(r"[^\W\d_]+", name)[1:]))
    if named is not None:
        return note + f"; a temperature in K, °C or °F is converted to {named}, the scale its name states"
    return note + ("; its name states no scale, so a temperature is taken as stated in K, °C or °F alike, "
                   "not converted: name the scale (`Melting Point (°C)`, `mp_celsius`) to have it converted")


def parse_value(text, spec: "PropertySpec") -> Optional[float]:
    """The value an answer states, in the property's unit (rule 6), or None."""
    return value_in_unit(text, spec)[0]


def converts_units(spec: "PropertySpec") -> bool:
    """Whether a unit an answer states is read for this property (eV, kcal/mol, g/mol, Å²:
    converted, or invalid as another kind); without one (LogP, Complexity, `property:<name>`)
    numbers are taken as stated (`value_in_unit`)."""
    return (spec.unit or "") in _SPEC_UNITS


def value_in_unit(text, spec: "PropertySpec") -> Tuple[Optional[float], Optional[str]]:
    """(`parse_value`, why the unit the answer states cannot be a value of this property or
    None) from one parse. The unit is the one after the number (`stated_unit`) or the one a
    header right before it states (`_unit_before`: `HOMO (Hartree): -0.19`); both, when
    they differ, make the answer invalid."""
    parsed = _parse(text, spec)
    if parsed is None:
        return None, None
    value, before, after = parsed.value, parsed.before, parsed.after
    stated = _unit_after(before, after)
    implied = None if converts_units(spec) or spec.refused_kinds else _implied_kind(spec)
    if converts_units(spec):
        own, header = _SPEC_UNITS[spec.unit], _unit_before(before)
    elif spec.refused_kinds or implied == _NO_UNIT_KIND:
        # LogP, LogD, log solubility, complexity (and `property:logp_exp`, a question file's
        # pKa): a number stated with any unit is not their value (`1.5 eV`, `45%`, `5.0 nM`,
        # `180 g/mol` for log solubility; was read as stated), a condition (`25 °C`, `pH 7.4`)
        # is skipped before, except a log solubility's `-3.4 mol/L` (`_log_of_molar`). Headers
        # are not read (`log solubility in mol/L: -2.49` names the unit under the log).
        own, header = _NO_UNIT, (_PH if _PH_BEFORE.search(before[-_UNIT_REACH:]) else None)
        if stated is not None and _is_log_solubility(spec) and _log_of_molar(value, stated):
            stated = None
        if stated is not None and _ARBITRARY_UNITS.fullmatch(stated[2].strip()):
            stated = None  # `350 a.u.`: arbitrary units, no unit (was: a Hartree, and invalid)
    elif implied is not None:
        # a unit its name implies (`Boiling Point`, `property:homo`): one of another kind makes
        # the answer invalid (`1.5 eV` for a boiling point; was read as stated); one of its kind
        # is taken as stated, not converted (the data's unit is not known), except a
        # temperature where the name states its scale (`_in_named_scale`)
        if stated is not None and stated[0] != implied:
            return None, _other_kind(f"{value:g} {stated[2]}", stated[0], spec.name, f"({_a(implied)})")
        if stated is not None and implied == "temperature":
            return _in_named_scale(value, stated[2], spec.name)
        return value, None
    else:
        return value, None  # a property whose name tells no kind (`property:<name>`): as stated
    if stated is not None and header is not None and stated[:2] != header[:2]:
        return None, f"states two units, {header[2]!r} before {value:g} and {stated[2]!r} after it, for {spec.name}"
    if stated is None and header is None:
        return value, None  # no unit given: as stated
    written = f"{value:g} {stated[2]}" if stated is not None else f"{header[2]} {value:g}"
    stated = stated or header
    if stated[0] != own[0]:
        return None, _other_kind(written, stated[0], spec.name, f"in {spec.unit}" if spec.unit else f"({_a(own[0])})")
    if stated[1] != own[1]:  # the property's own unit stays bit-exact
        value = value * stated[1] / own[1]
    return (value, None) if math.isfinite(value) else (None, None)


# `a.u.`, `AU`, `arb. units`, `arbitrary units`: for a property without a unit, arbitrary units
_ARBITRARY_UNITS = re.compile(r"a\.?[ \t]?u\.?|arb(?:\.|itrary)?[ \t]*(?:units?|u\.?)", re.IGNORECASE)
# Temperature scales, as (how a name or a unit writes it, offset and factor to °C)
_SCALES = {"°C": (0.0, 1.0), "K": (-273.15, 1.0), "°F": (-32.0, 5.0 / 9.0)}
_SCALE_WORDS = {"c": "°C", "celsius": "°C", "degc": "°C", "centigrade": "°C", "k": "K", "kelvin": "K",
                "f": "°F", "fahrenheit": "°F", "degf": "°F"}


def _scale(written: str) -> Optional[str]:
    """The temperature scale a unit as written (`°C`, `° F`, `K`, `kelvins`, `degrees
    Celsius`) or a name's word names, or None (`degrees` alone names none)."""
    words = re.findall(r"[^\W\d_]+", written.casefold())
    scales = {_SCALE_WORDS[word] for word in words if word in _SCALE_WORDS}
    if not scales and re.fullmatch(r"kelvins?", written.strip(), re.IGNORECASE):
        scales = {"K"}
    return scales.pop() if len(scales) == 1 else None


def _in_named_scale(value: float, written: str, name: str) -> Tuple[Optional[float], Optional[str]]:
    """A temperature stated in `written` (`423.15 K`) for a property whose name implies a
    temperature: converted, with the offset, to the scale the name states (`bp_celsius`,
    `Melting Point (°C)`, `mp_K`: 150 for `423.15 K`); taken as stated where the name states
    none (its note says so: `_implied_note`). Was: taken as stated in every case, so `423.15
    K` against a reference in °C counted 273.15 off without a word. A unit whose scale is not
    told (`100 degrees`) makes the answer invalid where the name states one."""
    named = _scale(" ".join(re.findall(r"[^\W\d_]+", name)[1:]))
    if named is None:
        return value, None
    stated = _scale(written)
    if stated is None:
        return None, f"states '{value:g} {written}', a temperature in no scale it names, for {name} (in {named})"
    offset, factor = _SCALES[stated]
    to_offset, to_factor = _SCALES[named]
    return (value + offset) * factor / to_factor - to_offset, None


def _other_kind(written: str, kind: str, name: str, wanted: str) -> str:
    """Why a number stated in a unit of another kind is not the property's value (`value_in_unit`)."""
    return f"states {written!r}, {_a(kind)}, for {name} {wanted}"


def _a(kind: str) -> str:
    """`kind` with its article: "an energy", "a unit with a prefix"."""
    return f"{'an' if kind[0] in 'aeio' else 'a'} {kind}"


def _is_log_solubility(spec: "PropertySpec") -> bool:
    """Log Solubility, or a property named as one (ESOL's column `measured log solubility in
    mols per litre`, `property:logS`): its `-3.4 mol/L` names the unit under the log."""
    return "concentration" in spec.refused_kinds or "solubility" in name_key(spec.name) or any(
        word in ("logs", "esol") for word in re.findall(r"[^\W_]+", spec.name.casefold()))


def _log_of_molar(value: float, stated: Tuple[str, Optional[float], str]) -> bool:
    """Whether a log solubility's number stated in mol/L (or `M`, `mols per litre`) is the log
    itself: a concentration is never negative, so `-3.4 mol/L` names the unit under the log, as
    ESOL's column "measured log solubility in mols per litre" does. A positive one (`0.0032
    mol/L`) and a prefixed one (`-3.4 mM`: the log of what, mol/L or mM?) stay refused. Was
    (4a2dea4): every concentration was refused, a reference `logS = -3.40 mol/L` stopped the report."""
    return stated[0] == "concentration" and stated[1] == _MOLAR and value <= 0


# --------------------------------------------------------------------------- ranges


@dataclass(frozen=True)
class PropertySpec:
    name: str
    unit: Optional[str]
    low: Optional[float]
    high: Optional[float]
    aliases: Tuple[str, ...] = field(default=())
    note: str = ""
    # a log or a count (no unit: any unit stated makes a number not its value, `value_in_unit`): the
    # conditions skipped before its value, and for log solubility the concentrations under the log
    refused_kinds: frozenset = frozenset()

    def in_range(self, value: float, reference: Optional[float] = None) -> bool:
        """Within the valid range, widened to take in `reference` when one is given: a
        reference value outside the range (a 12500 g/mol molecule) made every prediction
        of it invalid, the exact one included."""
        low = self.low if self.low is None or reference is None else min(self.low, reference)
        high = self.high if self.high is None or reference is None else max(self.high, reference)
        return (low is None or value >= low) and (high is None or value <= high)

    def describe(self) -> Dict[str, object]:
        out = {"property": self.name, "unit": self.unit, "range": [self.low, self.high]
               if self.low is not None or self.high is not None else None}
        if self.note:
            out["note"] = self.note
        return out


_NO_UNIT = (_NO_UNIT_KIND, None)  # `PropertySpec.refused_kinds`: a unit stated is another kind
# A measurement's conditions (`The LogP at 25 °C is 2.1.`, `At pH 7.4, the LogD is 1.2.`, `at
# 1 atm`), skipped before the value (`_condition`), and for log solubility its concentration
# (`3.2 mM`, `0.0032 mol/L`), which marks `-3.4 mol/L` as the log's unit (`_log_of_molar`);
# any unit makes a unitless property's number invalid (was: a LogP's `5.0nM`, `1.5 eV` read as stated)
_CONDITIONS = frozenset({"temperature", "pH", "pressure"})
_CONCENTRATIONS = frozenset({"concentration", "amount of substance"})

#: Valid ranges, inclusive: physically possible and wide enough for every molecule in
#: PubChem / PubChemQC, so that only nonsense falls outside.
PROPERTY_RANGES: Dict[str, PropertySpec] = {spec.name: spec for spec in (
    PropertySpec("Molecular Weight", "g/mol", 1.0, 10000.0, ("MW", "mol weight", "molecular mass", "MolWt")),
    PropertySpec("LogP", "log units", -30.0, 30.0, ("XLogP", "XLogP3", "log P", "octanol-water partition coefficient"),
                 refused_kinds=_CONDITIONS),
    PropertySpec("Topological Polar Surface Area", "Å²", 0.0, 5000.0, ("TPSA", "polar surface area", "polararea")),
    PropertySpec("Complexity", "PubChem complexity (unitless)", 0.0, 100000.0, ("molecular complexity",),
                 refused_kinds=_CONDITIONS),
    PropertySpec("HOMO", "eV", -50.0, 10.0, ("HOMO energy",)),
    PropertySpec("LUMO", "eV", -30.0, 30.0, ("LUMO energy",)),
    PropertySpec("HOMO-LUMO Gap", "eV", 0.0, 50.0, ("gap", "HOMO LUMO gap", "HL gap", "band gap")),
    PropertySpec("SCF Energy", "as in the data (eV, 10^4 eV or Hartree)", -1.0e7, 0.0, ("SCF", "total energy"),
                 note="always negative; the range covers every unit the sources use"),
    PropertySpec("Log Solubility", "log(mol/L)", -20.0, 5.0, ("ESOL", "solubility", "logS", "log S"),
                 refused_kinds=_CONDITIONS | _CONCENTRATIONS),
    PropertySpec("Hydration Free Energy", "kcal/mol", -50.0, 20.0, ("FreeSolv", "SAMPL", "hydration energy")),
    PropertySpec("LogD", "log units", -15.0, 15.0, ("Lipophilicity", "logD7.4", "log D"), refused_kinds=_CONDITIONS),
)}
_BY_KEY = {name_key(alias): spec for spec in PROPERTY_RANGES.values() for alias in (spec.name,) + spec.aliases}


PROPERTY_PREFIX = "property:"  # deepmolm_plugin.data.prompts: labelled-property tasks "property:<name>"


def property_name(task: str) -> str:
    """The property a task asks for: the task name, without a `property:` prefix."""
    return task[len(PROPERTY_PREFIX):].strip() if task.startswith(PROPERTY_PREFIX) else task


def property_spec(name: str) -> PropertySpec:
    """The spec of a property name or alias; an unknown property, and a `property:<name>`
    task (a column of the data, whatever its name), get one with no unit and no range."""
    if name.startswith(PROPERTY_PREFIX):
        # deepmolm-prepare names a CSV or SDF label column `property:<column>`: QM9's `homo`
        # column holds Hartree, and as the known HOMO (eV) a right answer "-0.25 Hartree"
        # was converted to -6.80 and scored 6.55 off. The data's unit is not known here.
        own = property_name(name)
        known = _BY_KEY.get(name_key(own))
        note = (f"the data's own property, taken as stated; named like the known property {known.name} ("
                f"{known.unit}), whose unit and range are not assumed" if known else "")
        note = "; ".join(part for part in (note, _implied_note(own)) if part)
        return PropertySpec(own, None, None, None, note=note)
    return _BY_KEY.get(name_key(name)) or PropertySpec(name, None, None, None, note=_implied_note(name))


def is_property(name: str) -> bool:
    """A known property, or any `property:<name>` task."""
    return name.startswith(PROPERTY_PREFIX) or name_key(name) in _BY_KEY


# --------------------------------------------------------------------------- metrics


def parse_prediction(text: str, spec: PropertySpec) -> Optional[float]:
    """The parsed value in the property's unit, or None if it is not a number, states a
    unit of another kind, or is out of the property's range."""
    value = parse_value(text, spec)
    return value if value is not None and spec.in_range(value) else None


def property_metrics(preds: Sequence[str], refs: Sequence[float], name: str) -> Dict[str, object]:
    """Valid ratio (x100) and MAE/RMSE over valid predictions for one property.

    preds: answer texts; refs: reference values (finite numbers)."""
    if len(preds) != len(refs):
        raise ValueError(f"{len(preds)} predictions but {len(refs)} references")
    spec = property_spec(name)
    errors = []
    for pred, ref in zip(preds, refs):
        ref = float(ref)
        if not math.isfinite(ref):
            raise ValueError(f"{name}: reference value {ref} is not finite")
        value = scored_value(pred, spec, ref)
        if value is not None:
            errors.append(abs(value - ref))
    n, n_valid = len(preds), len(errors)
    result = spec.describe()
    result.update({"n": n, "n_valid": n_valid, "valid_ratio": 100.0 * n_valid / n if n else None,
                   "n_references_out_of_range": sum(not spec.in_range(float(r)) for r in refs),
                   "mae": mean_error(errors), "rmse": root_mean_square(errors)})
    return result


def scored_value(text: str, spec: PropertySpec, reference: float) -> Optional[float]:
    """The value a prediction is scored with, or None when it is invalid: not a number, out
    of range (widened to take in the reference), or so far from the reference that the
    error is beyond the float range (a
    property without a range, the model answering 1e308): that error is no number."""
    value = parse_value(text, spec)
    if value is None or not spec.in_range(value, reference):
        return None
    return value if math.isfinite(value - reference) else None


def mean_error(errors: Sequence[float]) -> Optional[float]:
    """The mean, summed as e/n: a plain sum of large errors overflows to inf."""
    return sum(e / len(errors) for e in errors) if errors else None


def root_mean_square(errors: Sequence[float]) -> Optional[float]:
    """RMSE scaled by the largest error: e*e overflows to inf above 1.3e154 (an answer of
    1e200 for a property without a range), and metrics.json would hold `Infinity`."""
    if not errors:
        return None
    scale = max(errors)
    if scale == 0:
        return 0.0
    return scale * math.sqrt(sum((e / scale) ** 2 for e in errors) / len(errors))
