//! `NdM[+K]` dice: parsing with bounds that keep an answer short, and rolling with the
//! host's random numbers.

use plugboard_sdk::random;

/// At most this many dice in one roll, so the answer stays one line.
pub const MAX_DICE: u32 = 100;
/// At most this many faces.
pub const MAX_FACES: u32 = 1_000_000;
/// The modifier's bound either way.
pub const MAX_MODIFIER: i64 = 1_000_000;

/// A parsed `NdM+K`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dice {
    pub count: u32,
    pub faces: u32,
    pub modifier: i64,
}

/// One roll: each die and the total with the modifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Roll {
    pub dice: Vec<u32>,
    pub total: i64,
}

impl Dice {
    /// Parses `NdM`, `dM` (one die), `NdM+K` or `NdM-K`; the error says what is wrong.
    pub fn parse(text: &str) -> Result<Dice, String> {
        let text = text.trim().to_ascii_lowercase();
        let (count, rest) = text
            .split_once('d')
            .ok_or_else(|| format!("`{text}` is not dice: write NdM[+K], e.g. 2d6+1"))?;
        let count = if count.is_empty() {
            1
        } else {
            number(count, "the number of dice")?
        };
        let (faces, modifier) = match rest.find(['+', '-']) {
            Some(i) => {
                let k = number(&rest[i + 1..], "the modifier")?;
                let k = i64::try_from(k).map_err(|_| "the modifier is too large".to_string())?;
                (&rest[..i], if &rest[i..=i] == "-" { -k } else { k })
            }
            None => (rest, 0),
        };
        let faces = number(faces, "the number of faces")?;
        if count == 0 || count > u64::from(MAX_DICE) {
            return Err(format!("roll between 1 and {MAX_DICE} dice"));
        }
        if !(2..=u64::from(MAX_FACES)).contains(&faces) {
            return Err(format!("a die has between 2 and {MAX_FACES} faces"));
        }
        if modifier.abs() > MAX_MODIFIER {
            return Err(format!("the modifier is at most {MAX_MODIFIER} either way"));
        }
        Ok(Dice {
            count: count as u32,
            faces: faces as u32,
            modifier,
        })
    }

    /// Rolls the dice.
    pub fn roll(&self) -> Roll {
        let dice: Vec<u32> = (0..self.count)
            .map(|_| random::below(u64::from(self.faces)) as u32 + 1)
            .collect();
        let total = dice.iter().map(|&d| i64::from(d)).sum::<i64>() + self.modifier;
        Roll { dice, total }
    }
}

impl Roll {
    /// `2d6+1: 3 + 5 + 1 = 9`.
    pub fn describe(&self, dice: &Dice) -> String {
        let faces: Vec<String> = self.dice.iter().map(u32::to_string).collect();
        let mut sum = faces.join(" + ");
        let spec = match dice.modifier {
            0 => format!("{}d{}", dice.count, dice.faces),
            k if k > 0 => {
                sum.push_str(&format!(" + {k}"));
                format!("{}d{}+{k}", dice.count, dice.faces)
            }
            k => {
                sum.push_str(&format!(" - {}", -k));
                format!("{}d{}{k}", dice.count, dice.faces)
            }
        };
        format!("{spec}: {sum} = {}", self.total)
    }
}

/// A whole number of at most 7 digits (nothing a bound would not refuse is lost).
fn number(text: &str, what: &str) -> Result<u64, String> {
    if text.is_empty() || text.len() > 7 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{what} must be a whole number below 10,000,000"));
    }
    text.parse()
        .map_err(|_| format!("{what} must be a whole number"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_usual_forms() {
        let d = |count, faces, modifier| Dice {
            count,
            faces,
            modifier,
        };
        assert_eq!(Dice::parse("2d6"), Ok(d(2, 6, 0)));
        assert_eq!(Dice::parse("d20"), Ok(d(1, 20, 0)));
        assert_eq!(Dice::parse("3D8+4"), Ok(d(3, 8, 4)));
        assert_eq!(Dice::parse("1d10-2"), Ok(d(1, 10, -2)));
    }

    #[test]
    fn refuses_what_is_not_dice_or_out_of_bounds() {
        for bad in [
            "",
            "6",
            "2x6",
            "0d6",
            "101d6",
            "2d1",
            "2d0",
            "2d",
            "2d6+",
            "2d6+x",
            "-1d6",
            "99999999999d6",
            "2d6+9999999",
            "1d6++1",
        ] {
            assert!(Dice::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
