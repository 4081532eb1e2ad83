// The controller's logger type, shared by the config hub and the routes (its own file: both import it).
/** The subset of pino the controller uses; any structured logger fits. */
export interface Logger {
  debug(object: object, message?: string): void
  error(object: object, message?: string): void
  info(object: object, message?: string): void
  warn(object: object, message?: string): void
}
