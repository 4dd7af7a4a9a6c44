//! Reading a process's Prometheus `/metrics` in a test.

/// The text of `url` (a full `/metrics` URL) as `client` fetches it.
///
/// # Panics
/// If the request fails or the body is not text.
pub async fn text(client: &reqwest::Client, url: &str) -> String {
    client
        .get(url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("scrape {url}: {e}"))
        .text()
        .await
        .unwrap_or_else(|e| panic!("scrape {url}: {e}"))
}

/// The value of the unlabelled series `name` in a scrape, if it is there.
///
/// # Panics
/// If the series is there with a value that is not a number (a broken exporter must
/// fail the test, not read as an absent series).
#[must_use]
pub fn unlabelled(scrape: &str, name: &str) -> Option<f64> {
    let value = scrape
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))?;
    Some(
        value
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("{name} {value:?}: {e}")),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn finds_the_series_by_its_whole_name() {
        let s = "# TYPE a_total counter\na_total_x 7\na_total 3\nb{q=\"x\"} 1\n";
        assert_eq!(super::unlabelled(s, "a_total"), Some(3.0));
        assert_eq!(super::unlabelled(s, "b"), None);
    }
}
