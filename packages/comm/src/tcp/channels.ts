/** Channel numbers on a connection: rendezvous control, the driver's two directions, then one per group. */
export const Channel = { control: 1, driverDown: 2, driverUp: 3, groupBase: 16 } as const;
