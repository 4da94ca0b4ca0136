//! Tests of the fake manager's semantics, and an example of using it to test rollback logic.

use super::*;
use crate::cpu::CpuWeightFormula;

fn p(s: &str) -> CgroupPath {
    CgroupPath::new(s).unwrap()
}

#[test]
fn records_calls_and_rendered_writes() {
    let m = FakeManager::new(Dialect::V2(CpuWeightFormula::Linear));
    let pod = p("kubepods/burstable/podx");
    m.create(&pod).unwrap();
    assert!(m.exists(&p("kubepods")) && m.exists(&p("kubepods/burstable")));
    m.apply(
        &pod,
        &Resources {
            memory_limit_in_bytes: 64 << 20,
            cpu_shares: 1024,
            ..Resources::default()
        },
    )
    .unwrap();
    let writes: Vec<(String, String)> = m
        .writes()
        .into_iter()
        .map(|(_, w)| (w.file, w.value))
        .collect();
    assert_eq!(
        writes,
        [
            ("cpu.weight".to_owned(), "39".to_owned()),
            ("memory.max".to_owned(), "67108864".to_owned())
        ]
    );
    assert_eq!(m.version(), CgroupVersion::V2);

    let m = FakeManager::new(Dialect::V1);
    m.create(&pod).unwrap();
    m.apply(
        &pod,
        &Resources {
            cpu_shares: 1024,
            ..Resources::default()
        },
    )
    .unwrap();
    assert_eq!(m.writes()[0].1.file, "cpu.shares");
}

#[test]
fn mirrors_kernel_semantics() {
    let m = FakeManager::new(Dialect::V1);
    let c = p("a/b");
    assert!(matches!(
        m.apply(&c, &Resources::default()),
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(m.stats(&c), Err(Error::NotFound { .. })));
    assert!(matches!(
        m.add_task(&c, Task::Process(1)),
        Err(Error::NotFound { .. })
    ));
    m.remove(&c).unwrap(); // missing is fine
    m.create(&c).unwrap();
    m.create(&c).unwrap(); // idempotent
    m.add_task(&c, Task::Process(7)).unwrap();
    assert_eq!(m.tasks(&c), [Task::Process(7)]);
    // A populated cgroup cannot be removed, not even through its parent.
    assert_eq!(
        m.remove(&p("a")).unwrap_err().code(),
        crate::Code::FailedPrecondition
    );
    m.add_task(&CgroupPath::root(), Task::Process(7)).unwrap(); // move it out
    m.remove(&p("a")).unwrap();
    assert!(!m.exists(&c) && !m.exists(&p("a")));
    // Validation is the real one.
    m.create(&c).unwrap();
    assert!(matches!(
        m.apply(
            &c,
            &Resources {
                cpu_quota: 5,
                ..Resources::default()
            }
        ),
        Err(Error::InvalidArgument { .. })
    ));
    m.set_stats(Stats {
        cpu_usage_ns: 5,
        ..Stats::default()
    });
    assert_eq!(m.stats(&c).unwrap().cpu_usage_ns, 5);
    m.add_task(&c, Task::Thread(9)).unwrap();
    m.exit_task(Task::Thread(9));
    m.remove(&c).unwrap();
}

/// The pattern a CRI handler uses: create, apply, attach, and undo the cgroup if a later step
/// fails. Each step's failure is injected and must leave nothing behind.
#[test]
fn rollback_leaves_nothing_when_any_step_fails() {
    fn setup(m: &dyn CgroupManager, path: &CgroupPath, pid: u32) -> Result<()> {
        m.create(path)?;
        let undo = |e: Error| {
            // Keep the first error; a cleanup error would be logged by the caller.
            let _ = m.remove(path);
            e
        };
        m.apply(
            path,
            &Resources {
                memory_limit_in_bytes: 1 << 20,
                ..Resources::default()
            },
        )
        .map_err(undo)?;
        m.add_task(path, Task::Process(pid)).map_err(undo)?;
        Ok(())
    }
    for op in [Op::Create, Op::Apply, Op::AddTask] {
        let m = FakeManager::new(Dialect::V1);
        let c = p("kubepods/podx");
        m.fail_next(op);
        let err = setup(&m, &c, 42).expect_err("injected");
        assert!(err.to_string().contains(&format!("{op:?}")), "{err}");
        assert!(!m.exists(&c), "{op:?} left the cgroup behind");
        assert!(m.tasks(&c).is_empty());
    }
    let m = FakeManager::new(Dialect::V1);
    setup(&m, &p("kubepods/podx"), 42).unwrap();
    assert_eq!(m.calls().len(), 3);
}
