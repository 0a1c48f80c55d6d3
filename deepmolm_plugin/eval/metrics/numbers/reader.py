r"""Reading an answer: the number in free text that is its value, or why it states none.

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
the index 43 an enumeration; a table's header labels its column, `| LogP | MW |` over `|
2.1 | 180.16 |` is 180.16 for the MW, was 2.1; a number stated relative to a property is a
difference, `5.1 eV above the HOMO`, labelled as no property's own). Where the answer names
the asked property, the number its own mention labels (or the number that opens the answer,
`350. The molecule has 3 rings and a LogP of 2.1` is 350 for the complexity) is read before
any other, and where that number is no one value, the answer is invalid for it: `The
molecule has 7 carbon atoms and a molecular weight of 100 g/mol` is 100 (was 7), `In 2020
the MW was measured as 300.2` 300.2 (was 2020), `The 3D PSA is 45 Å² and the TPSA is 40.5
Å²` 40.5 (was 45), `The molecule has 3 rings; its LogP is 2-3.` a range (was 3). A number
is never skipped only for standing before the asked property's name: where its mentions
label none, the first number that is a value is read, `-5.2 eV. The HOMO energy is high,
... HOMO-LUMO gap.` is -5.2 (4a2dea4 read from the asked property's first mention on: no
value, or another property's number); there, and where the answer names no property, a
number likely incidental (`skips._incidental`: a count, `2 rings`, a year, a version) is
read only where no other is: `The molecule has 2 rings and weighs 264.32 g/mol` is 264.32
(was 2), `5 pts` is 5. An answer whose every number is another property's has no value
(NoValue.OTHER_PROPERTY).

The steps, in the order `_parse_or_reason` applies them (the rules they apply are below;
each step names the module that holds its patterns):

  1. Normalise the text (`normalise.py`, rule 1).
  2. Once per answer: the numbers that list markers, citations and basis sets are made of
     (`skips._markers`, rule 3) and, for a property (`spec`), the mentions of known
     properties and their tables (`labels._Labels.of_answer`: None where it names none).
  3. For each number token (`syntax._NUMBER`, rule 2), first to last, its place: labelled by
     the asked property's mention or answering the question, else none; then the same for
     one likely incidental (`skips._incidental`). Once a number is read, only a number
     of a better place is looked at (steps c-i); one of the best place the answer can give
     (labelled by the asked property where it is named, else none) is read at once:
     a. pass it over where it lies in what a number passed over before covers (its
        uncertainty, the rest of its range) or is no value (`skips._not_a_value`, rule 3);
     b. for a property, pass it over where another property's mention labels it
        (`labels._Labels.label`), with its uncertainty and the rest of its range or choice
        (a parallel list's number, `HOMO/LUMO: -5.2/-1.1 eV`, with its own unit only: the next
        is no end of a range, and one the asked property's name labels is read as the list's
        only number, `reader._read_item`);
     c. pass it over where the answer rejects it (`rejections.py`: `not 3`, but not `not
        exactly 3`), with the rest of its range or choice (rule 3);
     d. stop, no value, at a sign that is not its own (`one_value._stray_sign`, rule 4);
     e. stop, no value, where it is malformed (`one_value._MALFORMED`: a decimal comma, a
        fraction or ratio, ...), a power of another base, a product or digits split by a
        space (rule 4);
     f. a range, bound, fraction or choice (`one_value._not_one_value`, rule 4): stop, no
        value; but for a property, a range or bound that is a condition's (`At 20-25 °C`,
        `conditions._condition`) is passed over with the rest of its range;
     g. its value: the exponent, a bare `10^n` (stop where no one value or a malformed one
        follows it, `10^3.5`, `10^3^2`), the sign; its uncertainty passed over (rule 5);
        stop where it is not finite (rule 4);
     h. for a property, pass it over where it is a condition, a pH, temperature or pressure
        (`conditions._condition`, rule 6), with its uncertainty; after
        `conditions._MAX_CONDITIONS` conditions (step f's count too) the scan ends;
     i. else it is the answer's value: a `findings.Reading`.
     Steps d-i read the number (`_read_number`): its reading, or why it is no one value
     (a "stop"); either ends the scan for a number read at once, else it is kept as the
     first of its place and the scan reads on.
  4. The scan ended: the best-placed number read, else the first condition passed over (a
     `Reading`, which `value_in_unit` refuses as of another kind), else the first
     condition's range or bound or rejected number passed over (`NoValue.DENIED`), else
     another property's number (`NoValue.OTHER_PROPERTY`), else `NoValue.NO_NUMBER`.

`value.value_in_unit` then reads that number's unit for the property (rule 6).

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
   `nan`, `inf` and text without digits are invalid. For a property (`parse_value`), a
   number scaled by a word right after it is invalid, with the reason: a glued lowercase `k`
   (`1.2k`; not `kDa`, `kcal`, `k_B`, nor a temperature's `373.15k`, a kelvin) or `thousand`,
   `million`, `billion` (`1.2 million`); each was read as the number alone, 1.2. Not scaled:
   where the reader's pick is another number (`Trained on 1.2 million molecules, ...`) or a
   bound follows (`5.8k+`), the scaled value would be 1000x off.
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
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Optional, Tuple, Union

from .conditions import _MAX_CONDITIONS, _condition
from .findings import NoValue, NoValueFinding, Reading, _shown
from .labels import _Labels
from .normalise import normalise
from .one_value import (_MALFORMED, _POWER, _PRODUCT, _SPACE_GROUP, _SPLIT_DIGITS, _malformed_reason,
                        _not_one_value, _not_one_value_reason, _past_range, _range_or_choice_length,
                        _stray_sign)
from .properties import PropertySpec
from .rejections import _DENIED_BEFORE, _DENIED_REACH, _HEDGE_AFTER, _RESTATED_AFTER
from .skips import _incidental, _markers, _not_a_value
from .syntax import _BARE_POWER, _NUMBER, _POWER_OF_TEN, _UNCERTAINTY
from .units import _UNIT_REACH, unit_text_after


def parse_number(text) -> Optional[float]:
    """The value an answer states, or None (rules in the module docstring)."""
    parsed = _parse(text)
    return None if parsed is None else parsed.value


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


# Where a number stands, best first (`_parse_or_reason`): labelled by the asked property's own
# mention, or by none; then the same for one likely incidental (`skips._incidental`: `7 carbon
# atoms`, `rule of 5`, `in 2020`, `RDKit 2023.09`), read only where no other number is: `The TPSA
# from 3 nitrogen atoms, by RDKit, is 40.5` is 40.5, `3 rings; it weighs 264.32 g/mol` 264.32
_OWN, _UNLABELLED, _OWN_INCIDENTAL, _INCIDENTAL = range(4)
# A number that answers the question is placed as the asked property's own: one that opens the
# answer (past markdown, quotes, `Answer:`; `350. The molecule has 3 rings and a LogP of 2.1` is
# 350 for the complexity, `1500 cm^-1 is the band; the HOMO is -5.2 eV` 1500, an inverse length,
# for the HOMO), or one the answer calls so (`The answer is 2.1. For comparison, the LogP of
# ethanol is -0.3.` is 2.1 for the LogP, `The predicted value is -5.2 eV. This HOMO level ...`)
# A hedge or a claim may open it (`About 2.1.`, `~2.1.`, `**≈ 180.16 g/mol**`, `It's about 2.1`, `I
# predict 2.1`, `Predicted: 2.1`, `1. 2.1`): a first version read such an opening value as unlabelled, and a
# later comparison the name labels won (`~2.1. For comparison, ethanol's LogP is -0.31.` was -0.31)
_HEDGE = (r"(?:about|approximately|approx\.|around|roughly|nearly|circa|ca\.|~|≈"
          r"|it[ \t]+is|it['’]s|it[ \t]+comes[ \t]+to"
          r"|i[ \t]+(?:would[ \t]+)?(?:estimate|predict|obtain|get|calculate)|predicted|estimated|calculated"
          r"|\d{1,2}[.)](?=[ \t]))")
_OPENS = re.compile(r"[\s>*_`\"'“‘(\[#-]*(?:(?:final[ \t]+)?answer[ \t]*[:=][\s*_`]*)?"
                    r"(?:" + _HEDGE + r"[ \t:*_`]*)*\Z", re.IGNORECASE)
_OPENS_REACH = 40  # characters
_ANSWER_BEFORE = re.compile(r"(?<![^\W\d_])(?:answer|value|prediction|result|estimate)[ \t*_]*(?:is|was|of|[:=≈~])"
                            r"[ \t*_`]*(?:(?:about|around|approximately|roughly|nearly|circa|ca\.|~|≈)[ \t]*)?\Z",
                            re.IGNORECASE)
_ANSWER_REACH = 40  # characters
# Where a sentence ends (`.`, `!`, `?` before a capital; not a line's end: a list's or table's
# lines build up to the labelled total, `- Hydroxyl O: 20.23 Å²` ... `Total TPSA ≈ 63.32 Å²`):
# the asked property's mention in a later sentence labels no number that replaces one read
# before it (`Predicted -4.2 log mol/L. Solubility below -4 is considered poor.` is -4.2;
# a first version read the later one, here no value)
_SENTENCE_END = re.compile(r"[.!?](?=\s+[*_#>`\"'(\[]*[A-Z])")


@dataclass(frozen=True)
class _PassedOver:
    """A number the scan passes over, reading on from `resume`: one the answer rejects
    (`finding`: NoValue.DENIED), a condition's range or bound (`finding`, `condition`) or a
    condition (`reading`, `condition`)."""
    resume: int
    finding: Optional[NoValueFinding] = None
    reading: Optional[Reading] = None
    condition: bool = False


def _parse_or_reason(text, spec: Optional["PropertySpec"] = None) -> Union[Reading, NoValueFinding]:
    """`_parse`, or why the text states no one value (`no_value_finding`). With the `spec` of
    the property asked for, a number that another property's mention labels is skipped, as
    list markers are (`_Labels`: `HOMO: -5.2 eV; LUMO: -1.1 eV` is -1.1 for the LUMO; was
    -5.2, the first number), and so is a number stated as a condition (`_condition`: `The
    LogD at pH 7.4 is 1.2.` is 1.2; was 7.4, then invalid). Where the answer names the asked
    property, the first number its mention labels decides, a value or why it is none (`The
    molecule has 7 carbon atoms and a molecular weight of 100 g/mol` is 100, `Below the 140 Å²
    threshold, its TPSA is 40.5 Å²` 40.5: were 7 and 140); else, or where it labels none, the
    first other number that is read, before one likely incidental (`_incidental`: a count, a
    year, a version). A condition that no value follows is returned (`value_in_unit` says why
    it is none); numbers that are all other properties' are NoValue.OTHER_PROPERTY."""
    if not isinstance(text, str):
        return NoValueFinding(NoValue.NOT_TEXT, f"not text but {type(text).__name__}")
    text = normalise(text)
    markers = _markers(text)
    labels = _Labels.of_answer(text, spec) if spec is not None else None
    goal = _OWN if labels is not None and labels.names_asked() else _UNLABELLED  # the best place a number can have
    best: Optional[tuple] = None  # (place, what it reads) of the best-placed number read so far
    condition: Optional[Reading] = None  # the first number read as a condition
    others = None  # (number, mention) of the first number another property's mention labels
    conditions = 0
    skipped: Optional[NoValueFinding] = None  # the first condition's bound or range, or denied number
    resume = 0  # after a skipped condition and its uncertainty (`25 ± 1 K`: the 1 is no number of its own)
    sentence_end = len(text)  # of the sentence that holds the best-placed number read
    for match in _NUMBER.finditer(text):
        start, end = match.start(), match.end()
        if best is not None and best[0] == _UNLABELLED and isinstance(best[1], Reading) and start > sentence_end:
            break  # a later sentence's labelled number does not replace it: a comparison, a threshold
        if start < resume or _not_a_value(text, match, markers):
            continue
        label = labels.label(start, end) if labels is not None else None
        item = labels.item(start) if label is not None else None  # of a parallel list (`HOMO/LUMO: -5.2/-1.1`)
        if label is not None and not label[3]:
            others = others or (match, label)
            # `HOMO: -5.2 ± 0.1 eV`: its 0.1 too, and the other end of its range (`mp 120-122 °C`:
            # the 122 is the melting point's, now that only a number attached to `mp` is its);
            # a parallel list's next number is no end of a range (`-5.2 and -1.1`): the next's own
            resume = item.end_of_item if item else end + _range_or_choice_length(text[end:end + _UNIT_REACH * 4])
            continue
        own = label is not None or _answers(text, start)
        place = _OWN if own else _UNLABELLED
        if best is not None and place >= best[0]:
            continue  # only a better-placed number changes the reading (and each reads the text before it)
        if spec is not None and _incidental(text, match, labelled=label is not None):
            # the asked property's own number is a count only before a counted thing's name (`The
            # TPSA from 3 nitrogen atoms`), never a year or version: `The complexity is 245 due to
            # ...`, `(complexity: 1985)` (a first version of this rule read a later number, or none)
            place += _OWN_INCIDENTAL
        if best is not None and place >= best[0]:
            continue
        read = _read_number(text, match, spec) if item is None else _read_item(text, item, spec)
        if isinstance(read, _PassedOver):
            skipped = skipped or read.finding
            resume = read.resume
            if read.condition:
                conditions += 1
                if conditions > _MAX_CONDITIONS:
                    break  # each reads the whole text before it (`before`): many would be quadratic
                condition = condition or read.reading
            continue
        if place <= goal:
            return read
        best = (place, read)
        found = _SENTENCE_END.search(text, end)
        sentence_end = found.start() if found else len(text)
    if best is not None:
        return best[1]
    if condition is not None:
        return condition
    if skipped is not None:
        return skipped
    if others is not None:
        number, mention = others
        return NoValueFinding(NoValue.OTHER_PROPERTY, _shown(text, min(mention[0], number.start()), number.end(),
                                                             NoValue.OTHER_PROPERTY.value))
    return NoValueFinding(NoValue.NO_NUMBER, NoValue.NO_NUMBER.value)


def _read_item(text: str, item, spec: Optional["PropertySpec"]) -> Union[Reading, NoValueFinding, _PassedOver]:
    """`_read_number` for a parallel list's number (`labels._Item`), read as the list's only one
    (`_Item.alone`): `-5.2 and -1.1 eV` is no range, and `-5.2` takes the `eV` after `-1.1`. A
    number passed over resumes past its item (positions in the text read alone are not the
    answer's)."""
    alone, at = item.alone(text)
    read = _read_number(alone, _NUMBER.match(alone, at), spec)
    return _PassedOver(item.end_of_item, read.finding, read.reading, read.condition) if isinstance(
        read, _PassedOver) else read


def _answers(text: str, start: int) -> bool:
    """Whether the number at `start` answers the question (`_OPENS`, `_ANSWER_BEFORE`)."""
    return bool((start <= _OPENS_REACH and _OPENS.match(text, 0, start))
                or _ANSWER_BEFORE.search(text, max(0, start - _ANSWER_REACH), start))


def _read_number(text: str, match: "re.Match", spec: Optional["PropertySpec"]
                 ) -> Union[Reading, NoValueFinding, _PassedOver]:
    """What one number states (steps 3c-3i): its `Reading`, why it is no one value, or that the
    scan passes it over (`_PassedOver`: a rejected number, a condition)."""
    start, end = match.start(), match.end()
    before, after = text[:start], text[end:]

    def found(kind: NoValue, at: int = start) -> NoValueFinding:
        return NoValueFinding(kind, _shown(text, at, end, kind.value))

    denied = _DENIED_BEFORE.search(text, max(0, start - _DENIED_REACH), start)
    if denied and not _HEDGE_AFTER.match(text, end):
        # `not 3 but 2.1`, `Rather than 3.0, the LogP is 2.1`: a number the answer rejects
        # (was: read, 3), skipped with the other end of its range or choice (`not 3-4`)
        return _PassedOver(end + _range_or_choice_length(after), found(NoValue.DENIED, denied.start()))
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
        return _PassedOver(len(text) - len(_past_range(after)), found(kind, at), condition=True)
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
    restated = _RESTATED_AFTER.match(after)
    if restated:  # `180 rounded, more precisely 180.16`: read on from the precise number
        return _PassedOver(len(text) - len(after) + restated.end())
    reading = Reading(value, before, after)
    if spec is not None and _condition(reading, spec):
        return _PassedOver(len(text) - len(after), reading=reading, condition=True)
    return reading
