//! The user directory's one query: the users whose id or display name contains a term, among
//! those a searcher may find (sharing a joined room with them, or joined to a public room).

use super::{Result, Storage};

/// A user the directory finds.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub(crate) struct DirectoryUser {
    pub(crate) user_id: String,
    pub(crate) displayname: Option<String>,
    pub(crate) avatar_url: Option<String>,
}

/// `text` for a LIKE pattern: its own `%`, `_` and `\` match only themselves.
fn like_escaped(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

impl Storage {
    /// Up to `limit` users matching `term` (case-insensitively, for ASCII) whom `searcher`
    /// may find, those whose name or localpart starts with it first.
    pub(crate) async fn search_user_directory(
        &self,
        searcher: &str,
        term: &str,
        limit: i64,
    ) -> Result<Vec<DirectoryUser>> {
        let escaped = like_escaped(term);
        let anywhere = format!("%{escaped}%");
        let prefix = format!("{escaped}%");
        Ok(sqlx::query_as(
            "SELECT u.user_id, u.displayname, u.avatar_url FROM users u
             WHERE u.deactivated = 0
               AND (u.user_id LIKE ?1 ESCAPE '\\' OR u.displayname LIKE ?1 ESCAPE '\\')
               AND (u.user_id = ?3
                    OR EXISTS (SELECT 1 FROM memberships them JOIN memberships me
                               ON me.room_id = them.room_id
                               WHERE them.user_id = u.user_id AND them.membership = 'join'
                                 AND me.user_id = ?3 AND me.membership = 'join')
                    OR EXISTS (SELECT 1 FROM memberships them JOIN room_state rs
                               ON rs.room_id = them.room_id AND rs.type = 'm.room.join_rules'
                                  AND rs.state_key = ''
                               JOIN events e ON e.event_id = rs.event_id
                               WHERE them.user_id = u.user_id AND them.membership = 'join'
                                 AND json_extract(e.json, '$.content.join_rule') = 'public'))
             ORDER BY (u.displayname LIKE ?2 ESCAPE '\\' OR u.user_id LIKE '@' || ?2 ESCAPE '\\') DESC,
                      u.user_id
             LIMIT ?4",
        )
        .bind(anywhere)
        .bind(prefix)
        .bind(searcher)
        .bind(limit)
        .fetch_all(self.pool())
        .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_wildcards_in_a_term_match_only_themselves() {
        assert_eq!(like_escaped("50%_a\\b"), "50\\%\\_a\\\\b");
        assert_eq!(like_escaped("alice"), "alice");
    }
}
