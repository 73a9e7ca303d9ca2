//! Who may do what: roles, the operations of the API, and the one decision
//! function every endpoint calls before it touches anything.
//!
//! The decision is pure (no I/O, no HTTP types) so that the whole table is
//! unit tested here, and the end-to-end matrix test checks that every
//! endpoint asks it the right question.
//!
//! A tenant role asking about another tenant gets [`Refusal::NotFound`],
//! never [`Refusal::Forbidden`]: a 403 would tell the caller that the other
//! tenant exists, and tenants must not learn each other's names.

use std::fmt;

use serde::{Deserialize, Serialize};
use warden_runtime::TenantId;

/// A token's role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Role {
    /// Everything: tenants, tokens, every tenant's agents, runs and audit.
    PlatformAdmin,
    /// One tenant's agents, their grants (by deploying and removing),
    /// config values, secrets, invocations, runs and approvals.
    TenantAdmin,
    /// Reads one tenant's audit log (or every tenant's, and the control
    /// plane's, when the token names no tenant); changes nothing.
    Auditor,
    /// Invokes one tenant's agents and reads the runs.
    Invoker,
}

impl Role {
    /// Every role, for tables and help text.
    pub(crate) const ALL: [Role; 4] = [
        Role::PlatformAdmin,
        Role::TenantAdmin,
        Role::Auditor,
        Role::Invoker,
    ];

    /// The role's name as written in tokens and events.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Role::PlatformAdmin => "platform-admin",
            Role::TenantAdmin => "tenant-admin",
            Role::Auditor => "auditor",
            Role::Invoker => "invoker",
        }
    }

    /// Parses a role name.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str() == text)
            .ok_or_else(|| {
                format!(
                    "role {text:?} is not a role; use platform-admin, tenant-admin, auditor or \
                     invoker"
                )
            })
    }

    /// Checks the tenant a token of this role is bound to: tenant roles
    /// need exactly one, the platform admin none, an auditor either.
    pub(crate) fn check_tenant(self, tenant: Option<&TenantId>) -> Result<(), String> {
        match (self, tenant) {
            (Role::PlatformAdmin, Some(_)) => {
                Err("a platform-admin token covers every tenant; drop --tenant".into())
            }
            (Role::TenantAdmin | Role::Invoker, None) => Err(format!(
                "a {} token is for one tenant; give it one (--tenant, or \"tenant\" over the API)",
                self.as_str()
            )),
            _ => Ok(()),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who is calling: from a valid token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Principal {
    /// The actor named by the token, recorded in every event.
    pub(crate) actor: String,
    /// The token's role.
    pub(crate) role: Role,
    /// The one tenant of a tenant role or a tenant auditor.
    pub(crate) tenant: Option<TenantId>,
    /// The token's id, so that approvals can tell requests apart by token.
    pub(crate) token_id: String,
}

/// What an endpoint does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Operation {
    /// List the tenants the caller may see.
    TenantsList,
    /// Create a tenant.
    TenantsCreate,
    /// Deploy an agent to a tenant.
    AgentsDeploy,
    /// List or show a tenant's agents.
    AgentsRead,
    /// Remove an agent.
    AgentsRemove,
    /// Invoke an agent.
    Invoke,
    /// Read a run's status, outcome and events.
    RunsRead,
    /// List a tenant's waiting approval requests and answer them.
    Approve,
    /// Read audit events, verify, prove, checkpoint or export a tenant's log.
    AuditRead,
    /// The same on the control-plane stream.
    ControlAuditRead,
    /// Create, list or revoke tokens.
    Tokens,
    /// List, set or unset the config values of a tenant's agents.
    Config,
    /// List a tenant's secret names, set or remove a secret.
    Secrets,
    /// Read the Prometheus metrics, which name every tenant.
    Metrics,
}

impl Operation {
    /// Every operation, for tables.
    #[cfg(test)]
    pub(crate) const ALL: [Operation; 14] = [
        Operation::TenantsList,
        Operation::TenantsCreate,
        Operation::AgentsDeploy,
        Operation::AgentsRead,
        Operation::AgentsRemove,
        Operation::Invoke,
        Operation::RunsRead,
        Operation::Approve,
        Operation::AuditRead,
        Operation::ControlAuditRead,
        Operation::Tokens,
        Operation::Config,
        Operation::Secrets,
        Operation::Metrics,
    ];
}

/// Why a request is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The role may not do this at all (HTTP 403).
    Forbidden,
    /// The request names a tenant the caller cannot see (HTTP 404), so that
    /// its existence is not revealed.
    NotFound,
}

/// May `who` perform `op` on `tenant` (`None` for operations that name no
/// tenant)?
///
/// # Errors
///
/// Returns the [`Refusal`] to answer with.
pub(crate) fn authorize(
    who: &Principal,
    op: Operation,
    tenant: Option<&TenantId>,
) -> Result<(), Refusal> {
    use Operation as O;
    use Role as R;

    // Tenant scope first: a tenant-bound caller naming another tenant learns
    // nothing, whatever the operation.
    if let (Some(own), Some(asked)) = (&who.tenant, tenant)
        && own != asked
    {
        return Err(Refusal::NotFound);
    }
    let allowed = match who.role {
        R::PlatformAdmin => true,
        R::TenantAdmin => matches!(
            op,
            O::TenantsList
                | O::AgentsDeploy
                | O::AgentsRead
                | O::AgentsRemove
                | O::Invoke
                | O::RunsRead
                | O::Approve
                | O::Config
                | O::Secrets
        ),
        R::Invoker => matches!(op, O::TenantsList | O::AgentsRead | O::Invoke | O::RunsRead),
        R::Auditor => match op {
            O::TenantsList | O::AuditRead | O::RunsRead => true,
            // The control-plane stream and the metrics name every tenant:
            // only an auditor of all tenants may read them.
            O::ControlAuditRead | O::Metrics => who.tenant.is_none(),
            _ => false,
        },
    };
    if allowed {
        Ok(())
    } else {
        Err(Refusal::Forbidden)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(role: Role, tenant: Option<&str>) -> Principal {
        Principal {
            actor: "someone".into(),
            role,
            tenant: tenant.map(|t| TenantId::new(t).unwrap()),
            token_id: "t".into(),
        }
    }

    /// Every role against every operation on its own tenant, on another
    /// tenant, and with no tenant named. `A` allowed, `F` forbidden, `N` not
    /// found.
    #[test]
    fn decides_every_role_and_operation() {
        use Operation as O;
        // (operation, platform-admin, tenant-admin, auditor of acme,
        // auditor of all, invoker), each as own/other.
        let table: [(Operation, [&str; 5]); 14] = [
            (O::TenantsList, ["AA", "AN", "AN", "AA", "AN"]),
            (O::TenantsCreate, ["AA", "FN", "FN", "FF", "FN"]),
            (O::AgentsDeploy, ["AA", "AN", "FN", "FF", "FN"]),
            (O::AgentsRead, ["AA", "AN", "FN", "FF", "AN"]),
            (O::AgentsRemove, ["AA", "AN", "FN", "FF", "FN"]),
            (O::Invoke, ["AA", "AN", "FN", "FF", "AN"]),
            (O::RunsRead, ["AA", "AN", "AN", "AA", "AN"]),
            (O::Approve, ["AA", "AN", "FN", "FF", "FN"]),
            (O::AuditRead, ["AA", "FN", "AN", "AA", "FN"]),
            (O::ControlAuditRead, ["AA", "FN", "FN", "AA", "FN"]),
            (O::Tokens, ["AA", "FN", "FN", "FF", "FN"]),
            (O::Config, ["AA", "AN", "FN", "FF", "FN"]),
            (O::Secrets, ["AA", "AN", "FN", "FF", "FN"]),
            (O::Metrics, ["AA", "FN", "FN", "AA", "FN"]),
        ];
        let callers = [
            who(Role::PlatformAdmin, None),
            who(Role::TenantAdmin, Some("acme")),
            who(Role::Auditor, Some("acme")),
            who(Role::Auditor, None),
            who(Role::Invoker, Some("acme")),
        ];
        let acme = TenantId::new("acme").unwrap();
        let globex = TenantId::new("globex").unwrap();
        let code = |r: Result<(), Refusal>| match r {
            Ok(()) => 'A',
            Err(Refusal::Forbidden) => 'F',
            Err(Refusal::NotFound) => 'N',
        };
        assert_eq!(table.len(), Operation::ALL.len());
        for (op, row) in table {
            for (caller, want) in callers.iter().zip(row) {
                let got: String = [
                    code(authorize(caller, op, Some(&acme))),
                    code(authorize(caller, op, Some(&globex))),
                ]
                .into_iter()
                .collect();
                assert_eq!(got, want, "{op:?} by {:?} {:?}", caller.role, caller.tenant);
            }
        }
    }

    #[test]
    fn tokens_bind_the_tenant_their_role_needs() {
        let acme = TenantId::new("acme").unwrap();
        assert!(Role::PlatformAdmin.check_tenant(None).is_ok());
        assert!(Role::PlatformAdmin.check_tenant(Some(&acme)).is_err());
        assert!(Role::TenantAdmin.check_tenant(None).is_err());
        assert!(Role::Invoker.check_tenant(Some(&acme)).is_ok());
        assert!(Role::Auditor.check_tenant(None).is_ok());
        assert!(Role::Auditor.check_tenant(Some(&acme)).is_ok());
        assert!(Role::parse("root").unwrap_err().contains("not a role"));
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()), Ok(role));
        }
    }
}
