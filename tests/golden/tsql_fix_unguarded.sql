-- driftwatch convergence script: fix mode, tsql dialect
-- Makes the subscriber's table equal to the publisher's: DELETE for rows extra on the
-- subscriber, INSERT for rows missing from it, UPDATE of the changed columns. Apply it to
-- the DESTINATION below.
-- Source (publisher): database SalesHub, table dbo.Order Details
-- Destination (subscriber): database SalesMember, table dbo.Order Details
-- Columns compared: OrderID, Line No, Flag, Qty, Price, Cost, Ratio, Weight, Name, Code, Blob, Day, At, Stamp, Moment, Guid
-- Columns not compared, and not written: Location (geography) (not comparable)
-- Counts: 1 missing, 1 extra, 1 changed (3 statements)

SET XACT_ABORT ON;
SET NOCOUNT ON;
GO
SET IDENTITY_INSERT [dbo].[Order Details] ON;
GO
BEGIN TRANSACTION;
INSERT INTO [dbo].[Order Details] ([OrderID], [Line No], [Flag], [Qty], [Price], [Cost], [Ratio], [Weight], [Name], [Code], [Blob], [Day], [At], [Stamp], [Moment], [Guid]) VALUES (1, 1, 1, 9223372036854775807, -1234567890123456789012345678.0123456789, 922337203685477.5807, 1.5E-7, -3.25E0, N'O''Brien; DROP TABLE x; -- é 日本 😀', N'ab   ', 0x0001feff, '0001-01-01', '23:59:59.9999999', '9999-12-31T23:59:59.9999999', '1970-01-01T00:00:00.0000001+00:00', '12345678-9abc-def0-0102-030405060708');
UPDATE [dbo].[Order Details] SET [Price] = 12.5, [Name] = N'it''s changed' WHERE [OrderID] = 2 AND [Line No] = -32768;
DELETE FROM [dbo].[Order Details] WHERE [OrderID] = 3 AND [Line No] = 7;
COMMIT TRANSACTION;
GO
SET IDENTITY_INSERT [dbo].[Order Details] OFF;
GO

-- driftwatch: 1 missing, 1 extra, 1 changed; 3 statements.
