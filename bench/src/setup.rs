//! The setup phase: registers the sending users and the reader, creates the bench rooms
//! and makes everyone join the rooms they need, with bounded parallelism so it stays quick
//! against servers that hash passwords slowly.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::matrix::{Error, Matrix, Session};

/// What to set up.
pub struct Plan {
    /// Makes user names unique per run: `bench_<run_id>_<i>`.
    pub run_id: String,
    pub users: usize,
    pub clients: usize,
    pub rooms: usize,
    pub registration_token: Option<String>,
    /// Setup requests in flight at once.
    pub parallelism: usize,
    /// A plugin's user to invite into every room and wait for.
    pub invite: Option<String>,
}

/// What the load phase needs.
pub struct Fixture {
    pub users: Vec<Session>,
    pub reader: Session,
    pub room_ids: Vec<String>,
}

pub async fn prepare(matrix: &Matrix, plan: &Plan) -> Result<Fixture, Error> {
    let run_id = &plan.run_id;
    // Nobody logs in again with it; it only has to satisfy the server.
    let password = format!("pw-{run_id}-{:016x}", crate::random_u64());

    eprintln!(
        "setup: registering {} users + 1 reader as bench_{run_id}_*",
        plan.users
    );
    let names = (0..plan.users)
        .map(|i| format!("bench_{run_id}_{i}"))
        .chain(std::iter::once(format!("bench_{run_id}_reader")));
    let mut users = try_all(
        plan.parallelism,
        names.map(|name| {
            let matrix = matrix.clone();
            let password = password.clone();
            let token = plan.registration_token.clone();
            async move { matrix.register(&name, &password, token.as_deref()).await }
        }),
    )
    .await?;
    let reader = users
        .pop()
        .ok_or_else(|| Error::Protocol("no reader session after registration".into()))?;
    let creator = users
        .first()
        .cloned()
        .ok_or_else(|| Error::Protocol("no sending user after registration".into()))?;

    eprintln!("setup: {} creates {} room(s)", creator.user_id, plan.rooms);
    let room_ids = try_all(
        plan.parallelism,
        (0..plan.rooms).map(|r| {
            let matrix = matrix.clone();
            let creator = creator.clone();
            let name = format!("bench {run_id} {r}");
            async move { matrix.create_room(&creator, &name).await }
        }),
    )
    .await?;

    let mut jobs: Vec<(Session, String)> = memberships(plan)
        .into_iter()
        .map(|(u, r)| (users[u].clone(), room_ids[r].clone()))
        .collect();
    jobs.extend(room_ids.iter().map(|r| (reader.clone(), r.clone())));
    eprintln!("setup: {} joins", jobs.len());
    try_all(
        plan.parallelism,
        jobs.into_iter().map(|(session, room_id)| {
            let matrix = matrix.clone();
            async move { matrix.join(&session, &room_id).await }
        }),
    )
    .await?;

    if let Some(user) = &plan.invite {
        eprintln!("setup: inviting {user} into {} room(s)", room_ids.len());
        for room in &room_ids {
            matrix.invite(&creator, room, user).await?;
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        for room in &room_ids {
            while !matrix.is_joined(&creator, room, user).await? {
                if std::time::Instant::now() > deadline {
                    return Err(Error::Protocol(format!("{user} did not join {room}")));
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }

    Ok(Fixture {
        users,
        reader,
        room_ids,
    })
}

/// (user, room) pairs that need a join. Client i sends as user i mod users into room
/// i mod rooms, so each user joins the rooms its clients use; a user without clients still
/// joins one room, so every registered user is a member somewhere. User 0 created the rooms
/// and is in them already.
fn memberships(plan: &Plan) -> BTreeSet<(usize, usize)> {
    let mut joins: BTreeSet<_> = (0..plan.clients)
        .map(|i| (i % plan.users, i % plan.rooms))
        .chain((plan.clients..plan.users).map(|u| (u, u % plan.rooms)))
        .collect();
    joins.retain(|&(u, _)| u != 0);
    joins
}

/// Runs setup jobs with at most `limit` in flight, returning results in job order; the
/// first failure aborts the rest.
async fn try_all<T, F>(limit: usize, jobs: impl IntoIterator<Item = F>) -> Result<Vec<T>, Error>
where
    T: Send + 'static,
    F: Future<Output = Result<T, Error>> + Send + 'static,
{
    let permits = Arc::new(Semaphore::new(limit));
    let mut set = JoinSet::new();
    let mut count = 0;
    for (index, job) in jobs.into_iter().enumerate() {
        let permits = permits.clone();
        set.spawn(async move {
            // The semaphore is never closed, so acquiring only waits.
            let _permit = permits.acquire_owned().await.ok();
            (index, job.await)
        });
        count += 1;
    }
    let mut results: Vec<Option<T>> = (0..count).map(|_| None).collect();
    while let Some(joined) = set.join_next().await {
        let (index, result) =
            joined.map_err(|e| Error::Protocol(format!("setup task failed: {e}")))?;
        results[index] = Some(result?);
    }
    Ok(results.into_iter().flatten().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(users: usize, clients: usize, rooms: usize) -> Plan {
        Plan {
            run_id: "t".into(),
            users,
            clients,
            rooms,
            registration_token: None,
            parallelism: 1,
            invite: None,
        }
    }

    #[test]
    fn one_shared_room_everyone_but_the_creator_joins() {
        let joins = memberships(&plan(4, 2, 1));
        assert_eq!(
            joins.into_iter().collect::<Vec<_>>(),
            [(1, 0), (2, 0), (3, 0)]
        );
    }

    #[test]
    fn room_per_client_joins_only_the_rooms_used() {
        // 4 clients over 2 users: user 0 sends in rooms 0 and 2, user 1 in rooms 1 and 3.
        let joins = memberships(&plan(2, 4, 4));
        assert_eq!(joins.into_iter().collect::<Vec<_>>(), [(1, 1), (1, 3)]);
    }
}
