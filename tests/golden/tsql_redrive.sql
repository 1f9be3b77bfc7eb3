-- driftwatch convergence script: redrive mode, tsql dialect
-- For Azure SQL Data Sync / Sync Framework: apply part 1 to the HUB (the SOURCE below). Its
-- no-op updates (SET c = c) make the service's own change tracking carry the rows missing or
-- changed on the member again. It touches no *_dss_tracking table and no _dss_ trigger.
-- Part 2, commented out at the end, is for the MEMBER: rows it holds that the hub does not.
-- Source (publisher): database SalesHub, table dbo.Order Details
-- Destination (subscriber): database SalesMember, table dbo.Order Details
-- Columns compared: OrderID, Line No, Flag, Qty, Price, Cost, Ratio, Weight, Name, Code, Blob, Day, At, Stamp, Moment, Guid
-- Columns not compared, and not written: Location (geography) (not comparable)
-- Counts: 1 missing, 1 extra, 1 changed (1 statements)

SET XACT_ABORT ON;
SET NOCOUNT ON;
GO
BEGIN TRANSACTION;
UPDATE [dbo].[Order Details] SET [Flag] = [Flag] WHERE ([OrderID] = 1 AND [Line No] = 1)
   OR ([OrderID] = 2 AND [Line No] = -32768);
COMMIT TRANSACTION;
GO

-- ===== Part 2: for the MEMBER (database SalesMember, table dbo.Order Details), not the hub =====
-- WARNING: 1 rows exist on the member and not on the hub. Check them before deleting:
-- they may be writes the member made that never reached the hub. To delete them, run
-- these statements ON THE MEMBER (remove the leading "-- ").
-- DELETE FROM [dbo].[Order Details] WHERE [OrderID] = 3 AND [Line No] = 7;

-- driftwatch: 1 missing, 1 extra, 1 changed; 1 statements.
