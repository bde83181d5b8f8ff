//! `badge-forge migrate`.

use oban_core::schema::{self, Migration};

use super::Database;

pub async fn run(database: &Database) -> anyhow::Result<()> {
    let pool = database.connect(2).await?;
    match schema::migrate(&pool, &database.prefix).await? {
        Migration::Applied { from } => {
            println!(
                "migrated Oban schema in {:?} from version {from} to {}",
                database.prefix.as_str(),
                schema::CURRENT_VERSION
            )
        }
        other => println!(
            "Oban schema in {:?} is current: {other:?}",
            database.prefix.as_str()
        ),
    }
    Ok(())
}
