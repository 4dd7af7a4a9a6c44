//! The shipped deployment files run Drover as production.

use std::path::Path;

#[test]
fn every_shipped_systemd_unit_sets_prod() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/systemd");
    let mut units = 0;
    for entry in std::fs::read_dir(&dir).expect("ops/deploy/systemd") {
        let path = entry.expect("a directory entry").path();
        if path.extension().is_none_or(|e| e != "service") {
            continue;
        }
        units += 1;
        let text = std::fs::read_to_string(&path).expect("a unit file");
        let service: Vec<&str> = text
            .lines()
            .skip_while(|l| l.trim() != "[Service]")
            .take_while(|l| !l.starts_with('[') || l.trim() == "[Service]")
            .map(str::trim)
            .collect();
        assert!(
            service.contains(&"Environment=DROVER_ENV=prod"),
            "{} does not set DROVER_ENV=prod in [Service]",
            path.display()
        );
    }
    assert_eq!(units, 3, "the api, worker and scheduler units");
}
