// netplane/monitor: the QMP and HMP machinery behind serveQmp(), for programs that assemble
// their own monitor: the server, the command tables, fd passing, and the counters.
export {
  serveQmp,
  QmpServer,
  Monitor,
  Hmp,
  runStdioMonitor,
  qmpCommands,
  QmpError,
  FdSets,
  resolveMonitorFd,
} from './control';
export type {
  QmpService,
  QmpCommand,
  QmpCommandTable,
  QmpServerOptions,
  QmpVersion,
  MonitorOptions,
  MonitorEvents,
} from './control';
export { netplaneStats, formatStatsTable } from './control/stats';
export type { NetplaneClientStats, NetplaneDropReason } from './control/stats';
