-- driftwatch convergence script: fix mode, tsql dialect
-- Makes the subscriber's table equal to the publisher's: DELETE for rows extra on the
-- subscriber, INSERT for rows missing from it, UPDATE of the changed columns. Apply it to
-- the DESTINATION below.
-- Source (publisher): database SalesHub, table dbo.Order Details
-- Destination (subscriber): database SalesMember, table dbo.Order Details
-- Columns compared: OrderID, Line No, Flag, Qty, Price, Cost, Ratio, Weight, Name, Code, Blob, Day, At, Stamp, Moment, Guid
-- Columns not compared, and not written: Location (geography) (not comparable)
-- Guarded: an UPDATE or DELETE applies only while the row still holds the values the diff
-- saw, an INSERT only while its key is absent; a statement that finds its row changed since
-- (replication goes on) is skipped, and the number skipped is reported at the end.
-- Counts: 1 missing, 1 extra, 1 changed (3 statements)

SET XACT_ABORT ON;
SET NOCOUNT ON;
IF OBJECT_ID('tempdb..#dw_skipped') IS NOT NULL DROP TABLE #dw_skipped;
CREATE TABLE #dw_skipped (n int);
GO
SET IDENTITY_INSERT [dbo].[Order Details] ON;
GO
BEGIN TRANSACTION;
IF NOT EXISTS (SELECT 1 FROM [dbo].[Order Details] WHERE [OrderID] = 1 AND [Line No] = 1) INSERT INTO [dbo].[Order Details] ([OrderID], [Line No], [Flag], [Qty], [Price], [Cost], [Ratio], [Weight], [Name], [Code], [Blob], [Day], [At], [Stamp], [Moment], [Guid]) VALUES (1, 1, 1, 9223372036854775807, -1234567890123456789012345678.0123456789, 922337203685477.5807, 1.5E-7, -3.25E0, N'O''Brien; DROP TABLE x; -- é 日本 😀', N'ab   ', 0x0001feff, '0001-01-01', '23:59:59.9999999', '9999-12-31T23:59:59.9999999', '1970-01-01T00:00:00.0000001+00:00', '12345678-9abc-def0-0102-030405060708') ELSE INSERT INTO #dw_skipped VALUES (1);
UPDATE [dbo].[Order Details] SET [Price] = 12.5, [Name] = N'it''s changed' WHERE [OrderID] = 2 AND [Line No] = -32768 AND [Flag] = 0 AND [Qty] = -9223372036854775808 AND [Price] = 0 AND [Cost] = -0.0001 AND [Ratio] = 0.0E0 AND [Weight] = 1E38 AND [Name] = N'' AND [Code] IS NULL AND [Blob] = 0x AND [Day] = '1970-01-01' AND [At] = '00:00:00' AND [Stamp] = '0001-01-01T00:00:00' AND [Moment] IS NULL AND [Guid] IS NULL;
IF @@ROWCOUNT = 0 INSERT INTO #dw_skipped VALUES (1);
DELETE FROM [dbo].[Order Details] WHERE [OrderID] = 3 AND [Line No] = 7 AND [Flag] IS NULL AND [Qty] IS NULL AND [Price] IS NULL AND [Cost] IS NULL AND [Ratio] IS NULL AND [Weight] IS NULL AND [Name] = N'nul' + NCHAR(0) + N'inside' AND [Code] = N'x' AND [Blob] IS NULL AND [Day] IS NULL AND [At] IS NULL AND [Stamp] IS NULL AND [Moment] IS NULL AND [Guid] IS NULL;
IF @@ROWCOUNT = 0 INSERT INTO #dw_skipped VALUES (1);
COMMIT TRANSACTION;
GO
SET IDENTITY_INSERT [dbo].[Order Details] OFF;
GO
DECLARE @dw_skipped int = (SELECT COUNT(*) FROM #dw_skipped);
RAISERROR('driftwatch: %d statements skipped because their row changed since the diff', 0, 1, @dw_skipped) WITH NOWAIT;
DROP TABLE #dw_skipped;
GO

-- driftwatch: 1 missing, 1 extra, 1 changed; 3 statements.
