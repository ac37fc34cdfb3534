export interface EventType {
  entity: string;
  event: string;
  description: string;
}

export const NAME_RE = /^[A-Za-z][A-Za-z0-9_]{0,63}$/;

export function typeName(entity: string, event: string): string {
  return `${entity}.${event}`;
}

/**
 * A subscription filter is `Entity.Event`, where either side may be `*`.
 * An empty filter list means every event.
 */
export function filterMatches(filter: string, entity: string, event: string): boolean {
  const dot = filter.indexOf('.');
  if (dot < 0) return false;
  const fe = filter.slice(0, dot);
  const fv = filter.slice(dot + 1);
  return (fe === '*' || fe === entity) && (fv === '*' || fv === event);
}

export function subscriptionMatches(filters: readonly string[], entity: string, event: string): boolean {
  if (filters.length === 0) return true;
  for (const f of filters) if (filterMatches(f, entity, event)) return true;
  return false;
}

/** Filters that match nothing in the catalog; the caller refuses them by name. */
export function unknownFilters(filters: readonly string[], catalog: readonly EventType[]): string[] {
  return filters.filter((f) => !catalog.some((t) => filterMatches(f, t.entity, t.event)));
}

const gusto = (entity: string, actions: string[], what: string): EventType[] =>
  actions.map((a) => ({ entity, event: a, description: `${what} ${a.replace(/_/g, ' ')}.` }));

/** The catalog Herald starts with: every event the two seed systems name. */
export const DEFAULT_CATALOG: readonly EventType[] = [
  { entity: 'Employee', event: 'Add', description: 'Employee added in the system.' },
  { entity: 'Employee', event: 'Update', description: 'Employee updated in the system.' },
  ...gusto('BankAccount', ['created', 'updated', 'deleted'], 'A bank account was'),
  ...gusto('Company', ['provisioned', 'updated', 'approved', 'suspended'], 'A company was'),
  ...gusto('CompanyBenefit', ['created', 'updated', 'deleted'], 'A company benefit was'),
  ...gusto('Contractor', ['created', 'updated', 'onboarded', 'deactivated', 'reactivated', 'deleted'], 'A contractor was'),
  ...gusto('ContractorPayment', ['created', 'updated', 'paid', 'cancelled'], 'A contractor payment was'),
  ...gusto('Employee', ['created', 'updated', 'onboarded', 'terminated', 'rehired', 'deleted'], 'An employee was'),
  ...gusto('EmployeeBenefit', ['created', 'updated', 'deleted'], 'An employee benefit was'),
  ...gusto('EmployeeJobCompensation', ['created', 'updated', 'deleted'], 'An employee job compensation was'),
  ...gusto('ExternalPayroll', ['created', 'updated', 'deleted'], 'An external payroll was'),
  ...gusto('Form', ['created', 'updated', 'signed'], 'A form was'),
  ...gusto('Location', ['created', 'updated', 'deleted'], 'A location was'),
  ...gusto('Notification', ['created', 'resolved', 'expired'], 'A notification was'),
  ...gusto('Payroll', ['submitted', 'processed', 'paid', 'reversed', 'cancelled', 'updated'], 'A payroll was'),
  ...gusto('PayrollSync', ['created', 'updated', 'completed'], 'A payroll sync was'),
  ...gusto('PaySchedule', ['created', 'updated'], 'A pay schedule was'),
  ...gusto('Signatory', ['created', 'updated', 'deleted'], 'A signatory was'),
];
