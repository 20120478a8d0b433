//! Running a query over segments: the postings of every term intersected (AND), phrases
//! checked on positions, filters on the documents' attributes, and BM25 over what is left.
//! Only filters and no words: the newest matches first. Matches in a room whose history is
//! partly hidden from the searcher come apart ([`Found::unsure`]), best first, for the host to
//! say which the searcher may see.

use std::collections::HashMap;
use std::rc::Rc;

use crate::query::Query;
use crate::segment::{Attr, Posting, Segment};

/// BM25's term-frequency saturation.
const K1: f64 = 1.2;
/// BM25's length normalisation.
const B: f64 = 0.75;

/// The collection's counts.
#[derive(Debug, Clone, Copy)]
pub struct Stats {
    /// Live documents.
    pub docs: u64,
    /// Their tokens.
    pub tokens: u64,
}

/// A matching document.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scored {
    pub doc: u32,
    pub score: f64,
    pub ts: u64,
}

/// How far a searcher reaches into a room's messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// All of them: the searcher sees the room's whole history.
    Whole,
    /// Only those the host says they may see: some of its history is hidden from them.
    Checked,
}

/// Matches in [`Reach::Checked`] rooms past this many (the best first) are neither shown nor
/// counted: each one checked costs a stored document read and a place in the host's list
/// (`bench/indexer.sh --late-searcher`: query p99 23 ms checking 250, 49 ms checking 1,000,
/// on a loaded box).
pub const MAX_UNSURE: usize = 500;

/// The best matches, and how many matched in all.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Found {
    /// The best `limit` matches in [`Reach::Whole`] rooms, best first.
    pub hits: Vec<Scored>,
    /// How many matched in [`Reach::Whole`] rooms.
    pub total: usize,
    /// The best [`MAX_UNSURE`] matches in [`Reach::Checked`] rooms, best first.
    pub unsure: Vec<Scored>,
    /// How many matched in [`Reach::Checked`] rooms, those past [`MAX_UNSURE`] included.
    pub unsure_total: usize,
}

/// The order of matches: the best score first, then the newest, then the later document.
pub fn rank(a: &Scored, b: &Scored) -> std::cmp::Ordering {
    b.score
        .total_cmp(&a.score)
        .then(b.ts.cmp(&a.ts))
        .then(b.doc.cmp(&a.doc))
}

/// The best `limit` of `all`, best first.
fn best(mut all: Vec<Scored>, limit: usize) -> Vec<Scored> {
    if all.len() > limit && limit > 0 {
        all.select_nth_unstable_by(limit - 1, rank);
    }
    all.truncate(limit);
    all.sort_by(rank);
    all
}

/// BM25's inverse document frequency.
fn idf(n: f64, df: f64) -> f64 {
    let df = df.min(n);
    (1.0 + (n - df + 0.5) / (df + 0.5)).ln()
}

fn postings_of<'a>(seg: &'a Segment, term: &str) -> Option<Vec<Posting<'a>>> {
    Some(seg.postings(term)?.collect())
}

fn find<'a>(list: &[Posting<'a>], doc: u32) -> Option<Posting<'a>> {
    list.binary_search_by_key(&doc, |p| p.doc)
        .ok()
        .map(|i| list[i])
}

/// Whether `phrase` (terms, in order) stands in the document, given each term's posting.
fn has_phrase(phrase: &[usize], postings: &[Posting<'_>]) -> bool {
    let lists: Vec<Vec<u32>> = phrase
        .iter()
        .map(|&t| postings[t].positions().collect())
        .collect();
    lists[0].iter().any(|&start| {
        lists.iter().enumerate().skip(1).all(|(i, l)| {
            start
                .checked_add(i as u32)
                .is_some_and(|p| l.binary_search(&p).is_ok())
        })
    })
}

/// The best `limit` matches of `q` in `rooms` over `segments`, leaving out `dead` documents;
/// `rooms` holds how far the searcher reaches into each room.
pub fn run(
    segments: &[Rc<Segment>],
    dead: &dyn Fn(u32) -> bool,
    stats: Stats,
    q: &Query,
    rooms: &HashMap<&str, Reach>,
    limit: usize,
) -> Found {
    let n = stats.docs.max(1) as f64;
    let avgdl = (stats.tokens as f64 / n).max(1.0);
    let idfs: Vec<f64> = q
        .terms
        .iter()
        .map(|t| idf(n, segments.iter().map(|s| f64::from(s.df(t))).sum()))
        .collect();
    let phrases: Vec<Vec<usize>> = q
        .phrases
        .iter()
        .map(|p| {
            p.iter()
                .filter_map(|w| q.terms.iter().position(|t| t == w))
                .collect()
        })
        .filter(|p: &Vec<usize>| p.len() > 1)
        .collect();
    let mut all = Vec::new();
    let mut unsure = Vec::new();
    for seg in segments {
        let reach: Vec<Option<Reach>> = seg
            .strings
            .iter()
            .map(|s| rooms.get(s.as_str()).copied())
            .collect();
        if reach.iter().all(Option::is_none) {
            continue;
        }
        let mut keep = |a: &Attr, s: Scored| match reach[a.room as usize] {
            Some(Reach::Checked) => unsure.push(s),
            _ => all.push(s),
        };
        let from_ok: Vec<bool> = seg
            .strings
            .iter()
            .map(|s| q.from.is_empty() || q.from.iter().any(|f| f.matches(s)))
            .collect();
        let admits = |doc: u32| {
            let a = seg.attr(doc)?;
            let ok = reach[a.room as usize].is_some()
                && from_ok[a.sender as usize]
                && q.after.is_none_or(|t| a.ts >= t)
                && q.before.is_none_or(|t| a.ts < t)
                && !dead(doc);
            ok.then_some(a)
        };
        if q.filters_only() {
            for i in 0..seg.span() {
                let doc = seg.lo + i;
                if let Some(a) = admits(doc) {
                    keep(
                        a,
                        Scored {
                            doc,
                            score: 0.0,
                            ts: a.ts,
                        },
                    );
                }
            }
            continue;
        }
        let Some(lists) = q
            .terms
            .iter()
            .map(|t| postings_of(seg, t))
            .collect::<Option<Vec<_>>>()
        else {
            continue;
        };
        let shortest = (0..lists.len())
            .min_by_key(|&i| lists[i].len())
            .unwrap_or(0);
        let mut postings = Vec::with_capacity(lists.len());
        'docs: for p in &lists[shortest] {
            let Some(a) = admits(p.doc) else { continue };
            postings.clear();
            for list in &lists {
                match find(list, p.doc) {
                    Some(found) => postings.push(found),
                    None => continue 'docs,
                }
            }
            if !phrases.iter().all(|ph| has_phrase(ph, &postings)) {
                continue;
            }
            let norm = K1 * (1.0 - B + B * f64::from(a.len) / avgdl);
            let score = postings
                .iter()
                .zip(&idfs)
                .map(|(p, idf)| {
                    let tf = f64::from(p.tf);
                    idf * tf * (K1 + 1.0) / (tf + norm)
                })
                .sum();
            keep(
                a,
                Scored {
                    doc: p.doc,
                    score,
                    ts: a.ts,
                },
            );
        }
    }
    Found {
        total: all.len(),
        hits: best(all, limit),
        unsure_total: unsure.len(),
        unsure: best(unsure, MAX_UNSURE),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::parse;
    use crate::segment::DocInput;

    fn seg(lo: u32, texts: &[(&str, &str, u64)]) -> Rc<Segment> {
        let docs: Vec<DocInput<'_>> = texts
            .iter()
            .enumerate()
            .map(|(i, (sender, text, ts))| DocInput {
                doc: lo + i as u32,
                event_hash: 0,
                room: if sender.starts_with("@x") {
                    "!other:t"
                } else {
                    "!r:t"
                },
                sender,
                ts: *ts,
                text,
            })
            .collect();
        Rc::new(Segment::build(lo, texts.len() as u32, &docs, &[]))
    }

    fn docs(found: &Found) -> Vec<u32> {
        found.hits.iter().map(|h| h.doc).collect()
    }

    fn search(segs: &[Rc<Segment>], q: &str) -> Found {
        let rooms: HashMap<&str, Reach> = [("!r:t", Reach::Whole)].into_iter().collect();
        let stats = Stats {
            docs: 6,
            tokens: 24,
        };
        run(
            segs,
            &|d| d == 4,
            stats,
            &parse(q, 10_000).unwrap(),
            &rooms,
            10,
        )
    }

    fn corpus() -> Vec<Rc<Segment>> {
        vec![
            seg(
                0,
                &[
                    ("@a:t", "the quick brown fox", 100),
                    ("@b:t", "a brown dog and a quick cat", 200),
                    ("@a:t", "fox fox fox everywhere, quick", 300),
                ],
            ),
            seg(
                3,
                &[
                    ("@x:t", "quick fox in another room", 400),
                    ("@b:t", "quick fox but dead", 500),
                    ("@b:t", "brown quick", 600),
                ],
            ),
        ]
    }

    #[test]
    fn all_words_must_match_and_more_matches_rank_higher() {
        let found = search(&corpus(), "quick fox");
        assert_eq!(
            docs(&found),
            [2, 0],
            "doc 3 is in another room, doc 4 is dead"
        );
        assert_eq!(found.total, 2);
        assert!(found.hits[0].score > found.hits[1].score);
        assert_eq!(
            docs(&search(&corpus(), "quick")),
            [5, 0, 2, 1],
            "shorter first"
        );
    }

    #[test]
    fn phrases_need_their_words_side_by_side() {
        assert_eq!(docs(&search(&corpus(), r#""brown fox""#)), [0]);
        assert_eq!(docs(&search(&corpus(), r#""quick brown""#)), [0]);
        assert_eq!(docs(&search(&corpus(), r#""brown quick""#)), [5]);
        assert!(docs(&search(&corpus(), r#""fox brown""#)).is_empty());
    }

    #[test]
    fn filters_narrow_and_alone_list_the_newest() {
        assert_eq!(docs(&search(&corpus(), "quick from:@b")), [5, 1]);
        assert_eq!(docs(&search(&corpus(), "from:@b:t")), [5, 1]);
        let after = search(&corpus(), "quick after:1970-01-01T00:00:00");
        assert_eq!(after.total, 4);
        let q = parse("from:@a", 10_000).unwrap();
        let mut q_before = q.clone();
        q_before.before = Some(300);
        let rooms: HashMap<&str, Reach> = [("!r:t", Reach::Whole)].into_iter().collect();
        let stats = Stats {
            docs: 6,
            tokens: 24,
        };
        assert_eq!(
            docs(&run(&corpus(), &|_| false, stats, &q_before, &rooms, 10)),
            [0]
        );
        assert_eq!(docs(&run(&corpus(), &|_| false, stats, &q, &rooms, 1)), [2]);
    }

    #[test]
    fn matches_in_a_room_the_searcher_sees_only_in_part_come_apart_best_first() {
        let rooms: HashMap<&str, Reach> = [("!r:t", Reach::Whole), ("!other:t", Reach::Checked)]
            .into_iter()
            .collect();
        let stats = Stats {
            docs: 6,
            tokens: 24,
        };
        let q = parse("quick", 10_000).unwrap();
        let found = run(&corpus(), &|d| d == 4, stats, &q, &rooms, 2);
        assert_eq!(docs(&found), [5, 0], "the best two of the room seen whole");
        assert_eq!(found.total, 4, "counted in the room seen whole only");
        let unsure: Vec<u32> = found.unsure.iter().map(|s| s.doc).collect();
        assert_eq!(unsure, [3], "the other room's match, to be checked");
        assert_eq!(found.unsure_total, 1);
    }

    #[test]
    fn a_word_no_segment_has_matches_nothing() {
        assert_eq!(search(&corpus(), "quick zebra").total, 0);
    }
}
